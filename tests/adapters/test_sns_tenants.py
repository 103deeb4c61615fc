"""SNS per-tenant AWS accounts (api.md rule 37): `SnsSmsAdapter(sessions=...)`, against moto."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from nexus_connector_async import (
    Connector,
    ConnectorError,
    CredentialRefreshError,
    InvalidRequest,
    RetryPolicy,
)
from nexus_connector_async.adapters import AuthenticationFailed, Money, SpendLimitExceeded
from nexus_connector_async.adapters.sns import SnsSmsAdapter
from nexus_connector_async.testing import capture_logs
from tests.adapters._moto import MotoServer, SnsSimulator, published
from tests.adapters._moto import no_ambient_aws as clear_ambient_aws

aioboto3 = pytest.importorskip("aioboto3", reason="the SNS adapter needs the `sns` extra")

FAST = RetryPolicy(max_attempts=3, base_delay=0.0, max_delay=0.0)
TO = "+14155552671"
PRICE = Money("0.00645", "USD")
KEYS = {
    "tenant-a": ("AKIAAAAAAAAAAAAAAAAA", "tenant/a/SECRET/PLANT+0001aaaaaaaaaaaaaaaa"),
    "tenant-b": ("AKIABBBBBBBBBBBBBBBB", "tenant/b/SECRET/PLANT+0002bbbbbbbbbbbbbbbb"),
}


@pytest.fixture(scope="module", autouse=True)
def no_ambient_aws() -> Iterator[None]:
    """Only the tenants' keys exist."""
    with pytest.MonkeyPatch.context() as env:
        clear_ambient_aws(env)
        yield


@pytest.fixture
async def connector() -> AsyncIterator[Connector]:
    async with Connector() as c:
        yield c


class Sessions:
    """A tenant's aioboto3 Session from its own access key; counts the calls."""

    def __init__(self) -> None:
        self.asked: list[str | None] = []

    def __call__(self, tenant_id: str | None) -> Any:
        self.asked.append(tenant_id)
        access_key, secret_key = KEYS[tenant_id or ""]
        return aioboto3.Session(aws_access_key_id=access_key, aws_secret_access_key=secret_key)


def make(connector: Connector, proxy: SnsSimulator, sessions: Any, **kw: Any) -> SnsSmsAdapter:
    return SnsSmsAdapter(connector, endpoint_url=proxy.url, sessions=sessions, retry=FAST, **kw)


async def test_each_tenant_publishes_with_its_own_access_key_and_client(
    proxy: SnsSimulator, moto: MotoServer
) -> None:
    sessions = Sessions()
    async with Connector() as connector:
        sns = make(connector, proxy, sessions)
        for tenant in ("tenant-a", "tenant-b", "tenant-a"):
            await sns.send(TO, f"for {tenant}", tenant_id=tenant)
        assert sessions.asked == ["tenant-a", "tenant-b"]  # one session and client per tenant
        assert set(sns._clients.open) == {"tenant-a", "tenant-b"}
    assert not sns._clients.open  # closed with the connector

    publishes = proxy.actions("Publish")
    assert [(p.params["Message"], p.access_key) for p in publishes] == [
        ("for tenant-a", KEYS["tenant-a"][0]),
        ("for tenant-b", KEYS["tenant-b"][0]),
        ("for tenant-a", KEYS["tenant-a"][0]),
    ]
    # Every other call (opt-out check, account limit) went with the tenant's key too.
    for seen in proxy.seen:
        assert seen.access_key in {KEYS["tenant-a"][0], KEYS["tenant-b"][0]}
    checks = proxy.actions("CheckIfPhoneNumberIsOptedOut")
    assert [c.access_key for c in checks] == [KEYS["tenant-a"][0], KEYS["tenant-b"][0]]
    assert len(await published(moto.url)) == 3


async def test_an_async_sessions_function_is_awaited(
    connector: Connector, proxy: SnsSimulator
) -> None:
    sync = Sessions()

    async def sessions(tenant_id: str | None) -> Any:
        return sync(tenant_id)

    await make(connector, proxy, sessions).send(TO, "hi", tenant_id="tenant-b")
    assert [p.access_key for p in proxy.actions("Publish")] == [KEYS["tenant-b"][0]]


async def test_each_tenant_account_has_its_own_spend_counter_and_limit(
    connector: Connector, proxy: SnsSimulator
) -> None:
    sns = make(connector, proxy, Sessions(), monthly_limit=Money(PRICE.amount * 2, "USD"))
    for _ in range(2):
        await sns.send(TO, "a", tenant_id="tenant-a")
    with pytest.raises(SpendLimitExceeded):
        await sns.send(TO, "a", tenant_id="tenant-a")
    await sns.send(TO, "b", tenant_id="tenant-b")  # tenant b's account has spent nothing yet
    assert (await sns.spend(tenant_id="tenant-a")).month_to_date == Money(PRICE.amount * 2, "USD")
    assert (await sns.spend(tenant_id="tenant-b")).month_to_date == PRICE
    assert len(proxy.actions("Publish")) == 3


async def test_a_failing_sessions_function_is_typed_and_nothing_is_published(
    connector: Connector, proxy: SnsSimulator, moto: MotoServer
) -> None:
    sns = make(connector, proxy, Sessions(), monthly_limit=Money("1", "USD"))
    with pytest.raises(CredentialRefreshError, match="KeyError") as caught:
        await sns.send(TO, "hi", tenant_id="unknown")
    assert isinstance(caught.value.__cause__, KeyError)
    [result] = await sns.send_bulk([(TO, "hi")], tenant_id="unknown")
    assert isinstance(result.error, CredentialRefreshError)
    assert (result.status, result.sent) == ("error", False)
    assert (await sns.spend(tenant_id="unknown")).month_to_date == Money("0", "USD")
    assert proxy.seen == []
    assert await published(moto.url) == []

    wrong = make(connector, proxy, lambda tenant: "not a session")
    with pytest.raises(InvalidRequest, match=r"aioboto3\.Session"):
        await wrong.send(TO, "hi", tenant_id="tenant-a")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"session": object(), "sessions": Sessions()}, "not both"),
        ({"sessions": "tenant-a"}, "sessions"),
    ],
)
def test_sessions_is_a_function_and_excludes_session(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidRequest, match=match):
        SnsSmsAdapter(Connector(), **kwargs)


async def test_tenant_secret_keys_never_reach_logs_reprs_or_errors(
    connector: Connector, proxy: SnsSimulator
) -> None:
    sns = make(connector, proxy, Sessions())
    errors: list[BaseException] = []
    with capture_logs() as logs:
        await sns.send(TO, "hi", tenant_id="tenant-a")
        proxy.fail("Publish", "AuthorizationError", status=403, message="denied")
        try:
            await sns.send(TO, "hi", tenant_id="tenant-b")
        except ConnectorError as exc:
            errors.append(exc)
        await sns.send_bulk([("+1", "bad"), (TO, "ok")], tenant_id="tenant-b")
    assert isinstance(errors[0], AuthenticationFailed)
    text = json.dumps(logs, default=repr) + repr(sns) + "".join(f"{e!r}{e}" for e in errors)
    for _, secret_key in KEYS.values():
        assert secret_key not in text
