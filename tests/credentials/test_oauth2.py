"""OAuth2CredentialProvider against a local token server: shared, early, single-flight tokens."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest
from aiohttp import web

from nexus_connector_async import (
    BackendUnavailable,
    Connector,
    CredentialProvider,
    CredentialRefreshError,
    Credentials,
    Endpoint,
    InvalidRequest,
    MemoryBackend,
    OAuth2CredentialProvider,
    Response,
    RetryPolicy,
)
from nexus_connector_async.testing import FakeClock, MockTransport, RecordedRequest, capture_logs
from nexus_connector_async.typing import RefreshesRejected

from ._oauth_server import OAuthServer, TokenRequest


def make(server: OAuthServer, **kwargs: Any) -> OAuth2CredentialProvider:
    kwargs.setdefault("client_id", "client-1")
    kwargs.setdefault("client_secret", "secret-1")
    return OAuth2CredentialProvider(server.token_url, **kwargs)


def api(server: OAuthServer, method: str = "GET") -> Endpoint:
    return Endpoint.create(server.api_url, method=method).with_retry(RetryPolicy(max_attempts=1))


# -- the protocol ---------------------------------------------------------------------------


async def test_provider_implements_both_credential_protocols(oauth_server: OAuthServer) -> None:
    provider = make(oauth_server)
    assert isinstance(provider, CredentialProvider)
    assert isinstance(provider, RefreshesRejected)


async def test_first_call_fetches_a_token_and_later_calls_reuse_it(
    oauth_server: OAuthServer,
) -> None:
    clock = FakeClock()
    provider = make(oauth_server, clock=clock)
    first = await provider.get_credentials("paypal")
    again = await provider.get_credentials("paypal")
    assert first is not None
    assert again is not None
    assert first.access_token == again.access_token == "at-1"
    assert first.token_type == "Bearer"
    assert first.expires_at == clock.time() + 3600
    assert oauth_server.count == 1


# -- single flight in one process -------------------------------------------------------------


async def test_200_concurrent_calls_make_one_token_request(oauth_server: OAuthServer) -> None:
    oauth_server.hold = asyncio.Event()
    provider = make(oauth_server)
    calls = asyncio.gather(*(provider.get_credentials("paypal") for _ in range(200)))
    await oauth_server.received.wait()
    oauth_server.hold.set()
    results = await calls
    assert {c.access_token for c in results if c is not None} == {"at-1"}
    assert len(results) == 200
    assert oauth_server.count == 1


async def test_tenants_get_their_own_tokens(oauth_server: OAuthServer) -> None:
    provider = make(oauth_server)
    a = await provider.get_credentials("paypal", "tenant-a")
    b = await provider.get_credentials("paypal", "tenant-b")
    none = await provider.get_credentials("paypal")
    assert a is not None
    assert b is not None
    assert none is not None
    assert len({a.access_token, b.access_token, none.access_token}) == 3
    assert (await provider.get_credentials("paypal", "tenant-a")) == a


async def test_two_workers_sharing_a_backend_make_one_token_request(
    oauth_server: OAuthServer,
) -> None:
    """Two providers on one backend play two workers: the backend lock collapses them."""
    oauth_server.hold = asyncio.Event()
    backend = MemoryBackend()
    workers = [make(oauth_server, backend=backend) for _ in range(2)]
    calls = asyncio.gather(*(w.get_credentials("paypal") for w in workers for _ in range(100)))
    await oauth_server.received.wait()
    oauth_server.hold.set()
    results = await calls
    assert {c.access_token for c in results if c is not None} == {"at-1"}
    assert oauth_server.count == 1


async def test_a_cancelled_caller_does_not_cancel_the_refresh_for_others(
    oauth_server: OAuthServer,
) -> None:
    oauth_server.hold = asyncio.Event()
    provider = make(oauth_server)
    impatient = asyncio.ensure_future(provider.get_credentials("paypal"))
    patient = asyncio.ensure_future(provider.get_credentials("paypal"))
    await oauth_server.received.wait()
    impatient.cancel()
    oauth_server.hold.set()
    creds = await patient
    assert creds is not None
    assert creds.access_token == "at-1"
    assert impatient.cancelled()
    assert oauth_server.count == 1


# -- through the Connector -------------------------------------------------------------------


async def test_connector_sends_the_bearer_token_and_50_calls_share_one(
    oauth_server: OAuthServer,
) -> None:
    oauth_server.hold = asyncio.Event()
    provider = make(oauth_server)
    async with Connector(credentials=provider) as connector:
        calls = asyncio.gather(*(connector.execute("paypal", api(oauth_server)) for _ in range(50)))
        await oauth_server.received.wait()
        oauth_server.hold.set()
        responses = await calls
    assert all(r.status == 200 for r in responses)
    assert set(oauth_server.api_seen) == {"Bearer at-1"}
    assert oauth_server.count == 1


async def test_a_wave_of_50_concurrent_401s_causes_one_refresh(oauth_server: OAuthServer) -> None:
    provider = make(oauth_server)
    async with Connector(credentials=provider) as connector:
        await connector.execute("paypal", api(oauth_server))
        assert oauth_server.count == 1
        oauth_server.revoke_all()  # at-1 is now rejected by the API
        oauth_server.api_barrier = 50  # all 50 requests reach the API before any gets its 401
        responses = await asyncio.gather(
            *(connector.execute("paypal", api(oauth_server)) for _ in range(50))
        )
    assert all(r.status == 200 and r.json()["token"] == "at-2" for r in responses)
    assert oauth_server.count == 2
    assert oauth_server.api_seen.count("Bearer at-1") == 51
    assert oauth_server.api_seen.count("Bearer at-2") == 50


async def test_a_401_after_someone_else_refreshed_resends_without_refreshing(
    oauth_server: OAuthServer,
) -> None:
    provider = make(oauth_server)
    old = await provider.get_credentials("paypal")
    assert old is not None
    new = await provider.refresh_if_current("paypal", None, old)
    assert new is not None
    assert new.access_token == "at-2"
    again = await provider.refresh_if_current("paypal", None, old)  # a late 401 for at-1
    assert again == new
    assert oauth_server.count == 2


async def test_a_401_that_persists_after_the_refresh_is_returned_not_looped(
    oauth_server: OAuthServer,
) -> None:
    oauth_server.revoke_all()
    oauth_server.respond = lambda req: web.json_response(
        {"access_token": f"useless-{len(oauth_server.requests)}", "expires_in": 3600}
    )
    async with Connector(credentials=make(oauth_server)) as connector:
        response = await connector.execute("paypal", api(oauth_server), raise_for_status=False)
    assert response.status == 401
    assert oauth_server.count == 2  # the first token, then one refresh after the 401


# -- proactive refresh ----------------------------------------------------------------------


async def test_a_token_is_refreshed_within_skew_of_expiry_before_it_expires(
    oauth_server: OAuthServer,
) -> None:
    clock = FakeClock()
    provider = make(oauth_server, clock=clock, skew=300.0)
    assert (await provider.get_credentials("paypal")) is not None
    clock.advance(3600 - 301)
    same = await provider.get_credentials("paypal")
    assert same is not None
    assert same.access_token == "at-1"
    clock.advance(2)  # now 299 s before expiry: inside the skew
    fresh = await provider.get_credentials("paypal")
    assert fresh is not None
    assert fresh.access_token == "at-2"
    assert not same.is_expired(clock.time())  # refreshed while the old one still worked
    assert oauth_server.count == 2


async def test_tokens_shorter_lived_than_the_skew_are_not_refreshed_on_every_call(
    oauth_server: OAuthServer,
) -> None:
    clock = FakeClock()
    oauth_server.expires_in = 60
    provider = make(oauth_server, clock=clock, skew=300.0)
    for _ in range(5):
        await provider.get_credentials("paypal")
    clock.advance(29)
    await provider.get_credentials("paypal")
    assert oauth_server.count == 1
    clock.advance(2)  # past half of the lifetime
    fresh = await provider.get_credentials("paypal")
    assert fresh is not None
    assert fresh.access_token == "at-2"


async def test_a_failed_early_refresh_keeps_using_the_still_valid_token(
    oauth_server: OAuthServer,
) -> None:
    clock = FakeClock()
    provider = make(oauth_server, clock=clock)
    await provider.get_credentials("paypal")
    oauth_server.respond = lambda req: web.Response(status=503, text="down")
    clock.advance(3600 - 100)
    still = await provider.get_credentials("paypal")
    assert still is not None
    assert still.access_token == "at-1"
    clock.advance(100)  # now expired, and the endpoint is still down
    clock.advance(10)  # past the failure backoff
    with pytest.raises(CredentialRefreshError):
        await provider.get_credentials("paypal")


async def test_a_token_without_expires_in_is_used_until_rejected(
    oauth_server: OAuthServer,
) -> None:
    clock = FakeClock()
    oauth_server.expires_in = None
    provider = make(oauth_server, clock=clock)
    first = await provider.get_credentials("paypal")
    clock.advance(10 * 86400)
    assert (await provider.get_credentials("paypal")) == first
    assert first is not None
    assert first.expires_at is None
    assert oauth_server.count == 1


async def test_string_expires_in_and_lowercase_bearer_are_accepted(
    oauth_server: OAuthServer,
) -> None:
    clock = FakeClock()
    oauth_server.expires_in = "3600"
    oauth_server.token_type = "bearer"
    creds = await make(oauth_server, clock=clock).get_credentials("paypal")
    assert creds is not None
    assert creds.expires_at == clock.time() + 3600
    assert creds.authorization == "Bearer at-1"


# -- forced refresh ---------------------------------------------------------------------------


async def test_concurrent_forced_refreshes_collapse_into_one(oauth_server: OAuthServer) -> None:
    provider = make(oauth_server)
    await provider.get_credentials("paypal")
    oauth_server.hold = asyncio.Event()
    oauth_server.received.clear()
    calls = asyncio.gather(*(provider.refresh_credentials("paypal") for _ in range(20)))
    await oauth_server.received.wait()
    oauth_server.hold.set()
    results = await calls
    assert {c.access_token for c in results if c is not None} == {"at-2"}
    assert oauth_server.count == 2


# -- refresh-token rotation ------------------------------------------------------------------


async def test_a_rotated_refresh_token_is_stored_and_used_next_time(
    oauth_server: OAuthServer,
) -> None:
    clock = FakeClock()
    oauth_server.rotate = True
    backend = MemoryBackend()
    provider = make(
        oauth_server, grant_type="refresh_token", refresh_token="rt-0", backend=backend, clock=clock
    )
    first = await provider.get_credentials("paypal")
    assert first is not None
    assert first.access_token == "at-1"
    assert oauth_server.requests[0].form["refresh_token"] == "rt-0"
    clock.advance(3600)
    second = await provider.get_credentials("paypal")
    assert second is not None
    assert second.access_token == "at-2"
    assert oauth_server.requests[1].form["refresh_token"] == "rt-1"
    assert oauth_server.requests[1].form["grant_type"] == "refresh_token"

    # Another worker, started with the original (now spent) seed, uses the shared chain.
    clock.advance(3600)
    other = make(
        oauth_server, grant_type="refresh_token", refresh_token="rt-0", backend=backend, clock=clock
    )
    third = await other.get_credentials("paypal")
    assert third is not None
    assert third.access_token == "at-3"
    assert oauth_server.requests[2].form["refresh_token"] == "rt-2"


async def test_a_refresh_token_chain_is_shared_by_every_service_of_the_grant(
    oauth_server: OAuthServer,
) -> None:
    """With rotation, two copies of one chain would spend each other's refresh tokens."""
    clock = FakeClock()
    oauth_server.rotate = True
    provider = make(oauth_server, grant_type="refresh_token", refresh_token="rt-0", clock=clock)
    a = await provider.get_credentials("paypal")
    b = await provider.get_credentials("paypal", "tenant-b")
    assert a == b
    clock.advance(3600)
    c = await provider.get_credentials("paypal", "tenant-b")
    assert c is not None
    assert c.access_token == "at-2"
    assert oauth_server.count == 2


async def test_a_reply_without_a_new_refresh_token_keeps_the_old_one(
    oauth_server: OAuthServer,
) -> None:
    clock = FakeClock()
    provider = make(oauth_server, grant_type="refresh_token", refresh_token="rt-seed", clock=clock)
    await provider.get_credentials("paypal")
    clock.advance(3600)
    await provider.get_credentials("paypal")
    assert [r.form["refresh_token"] for r in oauth_server.requests] == ["rt-seed", "rt-seed"]


# -- errors -----------------------------------------------------------------------------------


def _oauth_error(status: int, error: str, description: str) -> Any:
    return lambda req: web.json_response(
        {"error": error, "error_description": description}, status=status
    )


@pytest.mark.parametrize(
    ("respond", "code", "words"),
    [
        pytest.param(
            _oauth_error(400, "invalid_grant", "grant expired"),
            "invalid_grant",
            "HTTP 400",
            id="invalid_grant",
        ),
        pytest.param(
            _oauth_error(401, "invalid_client", "Client Authentication failed"),
            "invalid_client",
            "HTTP 401",
            id="invalid_client",
        ),
        pytest.param(
            lambda req: web.Response(status=200, text="{not json", content_type="application/json"),
            "invalid_response",
            "not valid JSON",
            id="malformed-json",
        ),
        pytest.param(
            lambda req: web.json_response({"token_type": "Bearer", "expires_in": 3600}),
            "invalid_response",
            "access_token",
            id="missing-access-token",
        ),
        pytest.param(
            lambda req: web.json_response({"access_token": "", "expires_in": 3600}),
            "invalid_response",
            "access_token",
            id="empty-access-token",
        ),
        pytest.param(
            lambda req: web.Response(status=502, text="<html>bad gateway</html>"),
            None,
            "HTTP 502",
            id="5xx-html",
        ),
    ],
)
async def test_token_endpoint_failures_raise_credential_refresh_error_with_the_code(
    oauth_server: OAuthServer, respond: Any, code: str | None, words: str
) -> None:
    oauth_server.respond = respond
    with pytest.raises(CredentialRefreshError) as info:
        await make(oauth_server).get_credentials("paypal")
    assert info.value.error == code
    assert words in str(info.value)


async def test_the_oauth_description_is_carried(oauth_server: OAuthServer) -> None:
    oauth_server.respond = _oauth_error(401, "invalid_client", "Client Authentication failed")
    with pytest.raises(CredentialRefreshError) as info:
        await make(oauth_server).get_credentials("paypal")
    assert info.value.description == "Client Authentication failed"


async def test_an_unreachable_token_endpoint_raises_credential_refresh_error(
    closed_port_url: str,
) -> None:
    provider = OAuth2CredentialProvider(closed_port_url, "client-1", "secret-1")
    with pytest.raises(CredentialRefreshError, match="unreachable"):
        await provider.get_credentials("paypal")


async def test_a_token_endpoint_that_never_answers_times_out(oauth_server: OAuthServer) -> None:
    oauth_server.hold = asyncio.Event()  # never set while we wait
    provider = make(oauth_server, timeout=0.2)
    with pytest.raises(CredentialRefreshError, match="RequestTimeout"):
        await provider.get_credentials("paypal")


async def test_waiters_of_a_failed_refresh_share_its_error_and_nobody_retries_at_once(
    oauth_server: OAuthServer,
) -> None:
    oauth_server.respond = _oauth_error(401, "invalid_client", "Client Authentication failed")
    oauth_server.hold = asyncio.Event()
    backend = MemoryBackend()
    workers = [make(oauth_server, backend=backend) for _ in range(2)]
    calls = asyncio.gather(
        *(w.get_credentials("paypal") for w in workers for _ in range(25)),
        return_exceptions=True,
    )
    await oauth_server.received.wait()
    oauth_server.hold.set()
    outcomes = await calls
    assert all(isinstance(o, CredentialRefreshError) for o in outcomes)
    assert {o.error for o in outcomes if isinstance(o, CredentialRefreshError)} == {
        "invalid_client"
    }
    assert oauth_server.count == 1

    with pytest.raises(CredentialRefreshError) as info:  # within the failure backoff
        await workers[1].get_credentials("paypal")
    assert info.value.error == "invalid_client"
    assert oauth_server.count == 1


async def test_after_the_failure_backoff_the_next_call_asks_again(
    oauth_server: OAuthServer,
) -> None:
    clock = FakeClock()
    oauth_server.respond = lambda req: web.Response(status=503)
    provider = make(oauth_server, clock=clock, failure_backoff=5.0)
    for _ in range(3):
        with pytest.raises(CredentialRefreshError):
            await provider.get_credentials("paypal")
    assert oauth_server.count == 1
    clock.advance(5.0)
    oauth_server.respond = None
    creds = await provider.get_credentials("paypal")
    assert creds is not None
    assert creds.access_token == "at-1"
    assert oauth_server.count == 2


async def test_a_waiter_takes_over_when_the_lock_holder_died(oauth_server: OAuthServer) -> None:
    clock = FakeClock(autojump=True)
    backend = MemoryBackend(clock=clock)
    provider = make(oauth_server, backend=backend, clock=clock, lock_lease=15.0)
    # A worker took the refresh lock and died: nothing will release it but its lease.
    lock_keys = [provider._key("paypal", None) + ":lock"]
    assert await backend.acquire_lock(lock_keys[0], "dead-worker", 15.0)
    started = clock.monotonic()
    creds = await provider.get_credentials("paypal")
    assert creds is not None
    assert creds.access_token == "at-1"
    assert clock.monotonic() - started >= 15.0
    assert oauth_server.count == 1


async def test_a_waiter_gives_up_at_its_deadline_while_the_lock_is_held(
    oauth_server: OAuthServer,
) -> None:
    clock = FakeClock(autojump=True)
    backend = MemoryBackend(clock=clock)
    provider = make(oauth_server, backend=backend, clock=clock, wait_timeout=2.0)
    assert await backend.acquire_lock(provider._key("paypal", None) + ":lock", "other", 600.0)
    with pytest.raises(CredentialRefreshError) as info:
        await provider.get_credentials("paypal")
    assert info.value.error == "refresh_timeout"
    assert oauth_server.count == 0


# -- client authentication and the form -------------------------------------------------------


async def test_client_credentials_go_in_http_basic_by_default(oauth_server: OAuthServer) -> None:
    await make(oauth_server, client_id="id:with/odd chars", client_secret="s3cr=t").get_credentials(
        "paypal"
    )
    req = oauth_server.requests[0]
    assert req.basic == ("id:with/odd chars", "s3cr=t")
    assert req.form == {"grant_type": "client_credentials"}
    assert req.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert req.headers["Accept"] == "application/json"


async def test_paypal_style_basic_auth_is_plain_base64_of_id_and_secret(
    oauth_server: OAuthServer,
) -> None:
    await make(oauth_server, client_id="AbC-123_x", client_secret="EFg-456_y").get_credentials("p")
    auth = oauth_server.requests[0].headers["Authorization"]
    assert auth == "Basic " + base64.b64encode(b"AbC-123_x:EFg-456_y").decode()


async def test_client_auth_body_sends_the_client_credentials_as_form_fields(
    oauth_server: OAuthServer,
) -> None:
    await make(oauth_server, client_auth="body", scope=["read", "write"]).get_credentials("p")
    req = oauth_server.requests[0]
    assert "Authorization" not in req.headers
    assert req.form == {
        "grant_type": "client_credentials",
        "client_id": "client-1",
        "client_secret": "secret-1",
        "scope": "read write",
    }


# -- services= ------------------------------------------------------------------------------


async def test_services_limits_which_services_get_credentials(oauth_server: OAuthServer) -> None:
    provider = make(oauth_server, services={"paypal"})
    assert await provider.get_credentials("stripe") is None
    assert await provider.refresh_credentials("stripe") is None
    assert await provider.refresh_if_current("stripe", None, Credentials("x")) is None
    assert await provider.get_credentials("paypal") is not None
    async with Connector(credentials=provider) as connector:
        await connector.execute("stripe", api(oauth_server), raise_for_status=False)
        await connector.execute("paypal", api(oauth_server))
    assert oauth_server.api_seen == [None, "Bearer at-1"]
    assert oauth_server.count == 1


async def test_without_services_every_service_is_served(oauth_server: OAuthServer) -> None:
    provider = make(oauth_server)
    assert await provider.get_credentials("anything") is not None


# -- construction ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"token_url": "ftp://example.test/token"},
        {"token_url": "not a url"},
        {"client_id": ""},
        {"client_secret": ""},
        {"grant_type": "password"},
        {"grant_type": "refresh_token"},
        {"client_auth": "jwt"},
        {"skew": -1},
        {"timeout": "soon"},
        {"services": "paypal"},
    ],
)
def test_bad_settings_are_refused_up_front(kwargs: dict[str, Any]) -> None:
    settings: dict[str, Any] = {
        "token_url": "https://example.test/oauth2/token",
        "client_id": "client-1",
        "client_secret": "secret-1",
    }
    settings.update(kwargs)
    with pytest.raises(InvalidRequest):
        OAuth2CredentialProvider(**settings)


def test_the_fixture_decodes_form_encoded_basic_credentials() -> None:
    """The fixture's own Basic parsing decodes what it is given (sanity check)."""
    raw = base64.b64encode(b"a%3Ab:c").decode()
    assert TokenRequest({"Authorization": f"Basic {raw}"}, {}).basic == ("a:b", "c")


# -- an injected transport ------------------------------------------------------------------


async def test_an_injected_transport_answers_the_token_requests() -> None:
    def handler(request: RecordedRequest) -> Response:
        assert request.method == "POST"
        assert request.url == "https://auth.example.test/token"
        assert request.body == b"grant_type=client_credentials"
        return Response(200, {"Content-Type": "application/json"}, b'{"access_token": "mock"}')

    transport = MockTransport(handler)
    provider = OAuth2CredentialProvider(
        "https://auth.example.test/token", "client-1", "secret-1", http=transport
    )
    creds = await provider.get_credentials("paypal")
    assert creds == Credentials("mock")
    assert len(transport.requests) == 1


# -- the backend ----------------------------------------------------------------------------


async def test_a_provider_and_the_connector_can_share_one_backend(
    oauth_server: OAuthServer,
) -> None:
    backend = MemoryBackend()
    provider = make(oauth_server, backend=backend)
    async with Connector(backend=backend, credentials=provider) as connector:
        first = await connector.execute("paypal", api(oauth_server))
        second = await connector.execute("paypal", api(oauth_server))
    assert first.json()["token"] == second.json()["token"] == "at-1"
    assert oauth_server.count == 1


class _WritesFail(MemoryBackend):
    """Takes the lock, then fails every write after the token request (Redis just died)."""

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        if not key.endswith(":lock"):
            raise BackendUnavailable("redis is down")
        await super().set(key, value, ttl)

    async def release_lock(self, key: str, token: str) -> None:
        raise BackendUnavailable("redis is down")


async def test_a_backend_failing_after_the_token_arrived_does_not_cost_the_caller_its_token(
    oauth_server: OAuthServer,
) -> None:
    provider = make(oauth_server, backend=_WritesFail())
    with capture_logs() as logs:
        creds = await provider.get_credentials("paypal")
    assert creds is not None
    assert creds.access_token == "at-1"
    assert {e.get("op") for e in logs if e["event"] == "nexus.oauth.backend_failed"} == {
        "store_token",
        "release_lock",
    }


async def test_services_may_be_any_iterable(oauth_server: OAuthServer) -> None:
    provider = make(oauth_server, services=(s for s in ["paypal"]))
    assert await provider.get_credentials("paypal") is not None
    assert await provider.get_credentials("stripe") is None
