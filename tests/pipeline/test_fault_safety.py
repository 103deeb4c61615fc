"""api.md rules 16-19 through the pipeline: memory, a real redis-server and a Redis Cluster.

16: a vendor answer is never thrown away by a backend failure (record, pause, complete).
17: "not processed" answers (409, 425, 429, 5xx) release the key instead of being stored.
18: a request that may have reached the vendor is resent only when the vendor can deduplicate it.
19: at most once where it cannot: an unknown outcome keeps the key `unknown` until forgotten.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from nexus_connector_async import (
    Backend,
    BackendUnavailable,
    BackendWriteFailed,
    Connector,
    Endpoint,
    Event,
    HttpStatusError,
    IdempotencyKey,
    MemoryBackend,
    OutcomeUnknown,
    OutcomeUnknownEvent,
    RedisBackend,
    RequestTimeout,
    RetryPolicy,
    Timeouts,
)
from nexus_connector_async._encoding import fingerprint
from nexus_connector_async.testing import FakeClock

from ._stub import Stub, status

ONE_SHOT = RetryPolicy(max_attempts=1)
FAST = RetryPolicy(max_attempts=3, base_delay=0.0, max_delay=0.0, jitter=False)
LEASE = 10.0
SHORT = Timeouts(total=0.3)
DEFAULT = Timeouts()


class Faulty:
    """Wraps a backend: `fail[name] = n` makes the next n calls of `name` raise."""

    def __init__(self, inner: Backend) -> None:
        self._inner = inner
        self.fail: dict[str, int] = {}
        self.calls: dict[str, int] = {}

    def __getattr__(self, attr: str) -> Any:
        value = getattr(self._inner, attr)
        if not inspect.iscoroutinefunction(value):
            return value

        async def wrapped(*args: Any, **kwargs: Any) -> Any:
            self.calls[attr] = self.calls.get(attr, 0) + 1
            if self.fail.get(attr, 0) > 0:
                self.fail[attr] -= 1
                raise BackendUnavailable(f"injected: {attr} failed")
            return await value(*args, **kwargs)

        return wrapped


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(
    params=[
        "memory",
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("cluster", marks=pytest.mark.cluster),
    ]
)
async def backend(request: pytest.FixtureRequest, clock: FakeClock) -> AsyncIterator[Backend]:
    b: Backend
    if request.param == "memory":
        b = MemoryBackend(clock=clock)
    elif request.param == "redis":
        request.getfixturevalue("redis_flush")
        b = RedisBackend.from_url(request.getfixturevalue("redis_url"), clock=clock)
    else:
        request.getfixturevalue("redis_cluster_flush")
        url = request.getfixturevalue("redis_cluster_url")
        b = RedisBackend.from_url(url, cluster=True, clock=clock)
    yield b
    await b.aclose()


@pytest.fixture
def faulty(backend: Backend) -> Faulty:
    return Faulty(backend)


@pytest.fixture
async def conn(faulty: Faulty, clock: FakeClock) -> AsyncIterator[tuple[Connector, list[Event]]]:
    seen: list[Event] = []
    async with Connector(
        backend=faulty,  # type: ignore[arg-type]
        clock=clock,
        idempotency_wait=60.0,  # longer than the lease: a waiter outlives a stranded lock
        idempotency_lease=LEASE,
        events=[seen.append],
    ) as c:
        yield c, seen


def deduped(stub: Stub, retry: RetryPolicy = ONE_SHOT) -> Endpoint:
    """A vendor that deduplicates by its idempotency header (Stripe, PayPal)."""
    return Endpoint(stub.url(), "POST", retry=retry, idempotency_header="Idempotency-Key")


def plain(stub: Stub, retry: RetryPolicy = ONE_SHOT, timeout: Timeouts = DEFAULT) -> Endpoint:
    """A vendor without idempotency (Twilio, SNS, a plain endpoint): a key guards our side only."""
    return Endpoint(stub.url(), "POST", retry=retry, timeout=timeout)


def hang(seconds: float = 5.0) -> Any:
    """A vendor that takes the request and answers too late (a read timeout for the caller)."""

    async def run(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(seconds)  # real time: the transport's timeout is real time too
        return web.Response(status=200, body=b"{}")

    return run


# -- rule 16: a vendor answer is never thrown away ------------------------------------------------


@pytest.mark.parametrize("endpoint", [deduped, plain])
async def test_a_failed_store_after_a_200_returns_it_and_stores_it_in_the_background(
    conn: tuple[Connector, list[Event]], faulty: Faulty, stub: Stub, endpoint: Any
) -> None:
    c, seen = conn
    faulty.fail["complete"] = 1
    stub.queue(status(200, b'{"id":"ch_1"}'))
    first = await c.execute("vendor", endpoint(stub), {"amount": 5}, idempotency_key="pay-1")
    assert (first.status, first.body, first.replayed) == (200, b'{"id":"ch_1"}', False)
    # The caller retries the same key: it gets the stored 200, the vendor is not asked again.
    again = await c.execute("vendor", endpoint(stub), {"amount": 5}, idempotency_key="pay-1")
    assert (again.status, again.body, again.replayed) == (200, b'{"id":"ch_1"}', True)
    assert stub.count == 1
    assert faulty.calls["complete"] == 2  # the first store failed, the background one landed
    failed = [e for e in seen if isinstance(e, BackendWriteFailed)]
    assert [(e.operation, e.error) for e in failed] == [("complete", "BackendUnavailable")]


async def test_a_failed_breaker_record_after_a_200_still_returns_it_and_keeps_the_key(
    conn: tuple[Connector, list[Event]], faulty: Faulty, stub: Stub
) -> None:
    c, seen = conn
    stub.queue(status(500))  # one failure on record: the next success must be recorded
    with pytest.raises(HttpStatusError):
        await c.execute("vendor", plain(stub), {"n": 0}, idempotency_key="warm-up")
    faulty.fail["record"] = 1
    first = await c.execute("vendor", plain(stub), {"amount": 5}, idempotency_key="pay-2")
    assert first.status == 200
    again = await c.execute("vendor", plain(stub), {"amount": 5}, idempotency_key="pay-2")
    assert again.replayed is True
    assert stub.count == 2  # the warm-up, and the payment once
    assert [e.operation for e in seen if isinstance(e, BackendWriteFailed)] == ["record"]


async def test_a_failed_pause_after_a_429_still_returns_the_429(
    conn: tuple[Connector, list[Event]], faulty: Faulty, stub: Stub
) -> None:
    c, seen = conn
    faulty.fail["pause"] = 1
    stub.queue(status(429, **{"Retry-After": "1"}))
    response = await c.execute(
        "vendor", deduped(stub), {"amount": 5}, idempotency_key="pay-3", raise_for_status=False
    )
    assert response.status == 429
    assert [e.operation for e in seen if isinstance(e, BackendWriteFailed)] == ["pause"]


async def test_a_retry_the_backend_cannot_admit_returns_the_vendors_last_answer(
    conn: tuple[Connector, list[Event]], faulty: Faulty, stub: Stub
) -> None:
    c, _ = conn
    stub.queue(status(503))
    real_admit = faulty.__getattr__("admit")

    async def admit_once(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("is_retry"):
            raise BackendUnavailable("injected: retry admission failed")
        return await real_admit(*args, **kwargs)

    faulty.admit = admit_once  # type: ignore[attr-defined]
    response = await c.execute(
        "vendor", deduped(stub, FAST), {"a": 1}, idempotency_key="pay-x", raise_for_status=False
    )
    assert (response.status, stub.count) == (503, 1)


# -- rule 17: "not processed" answers are not stored ------------------------------------------


@pytest.mark.parametrize("code", [409, 425, 429, 500, 503])
async def test_a_not_processed_answer_releases_the_key_for_a_later_call(
    conn: tuple[Connector, list[Event]], stub: Stub, code: int
) -> None:
    c, _ = conn
    stub.queue(status(code))
    with pytest.raises(HttpStatusError) as err:
        await c.execute("vendor", deduped(stub), {"amount": 5}, idempotency_key="pay-4")
    assert err.value.status == code
    later = await c.execute("vendor", deduped(stub), {"amount": 5}, idempotency_key="pay-4")
    assert (later.status, later.replayed, stub.count) == (200, False, 2)


async def test_other_client_errors_are_still_stored_and_replayed(
    conn: tuple[Connector, list[Event]], stub: Stub
) -> None:
    c, _ = conn
    stub.queue(status(402, b'{"error":"card_declined"}'))
    for replayed in (False, True):
        r = await c.execute(
            "vendor", deduped(stub), {"a": 1}, idempotency_key="pay-5", raise_for_status=False
        )
        assert (r.status, r.replayed) == (402, replayed)
    assert stub.count == 1


async def test_unstored_statuses_changes_the_set_but_5xx_is_always_released(
    conn: tuple[Connector, list[Event]], stub: Stub
) -> None:
    c, _ = conn
    store_all = RetryPolicy(max_attempts=1, unstored_statuses=frozenset())
    stub.queue(status(429), status(502))
    for key, code in (("pay-6", 429), ("pay-7", 502)):
        with pytest.raises(HttpStatusError) as err:
            await c.execute("vendor", deduped(stub, store_all), {"a": 1}, idempotency_key=key)
        assert err.value.status == code
    stored = await c.execute(
        "vendor",
        deduped(stub, store_all),
        {"a": 1},
        idempotency_key="pay-6",
        raise_for_status=False,
    )
    assert (stored.status, stored.replayed) == (429, True)
    released = await c.execute(
        "vendor", deduped(stub, store_all), {"a": 1}, idempotency_key="pay-7"
    )
    assert (released.status, released.replayed) == (200, False)
    assert stub.count == 3


# -- rule 18: resend only when the vendor can deduplicate ---------------------------------------


async def test_a_keyed_post_without_a_vendor_idempotency_header_is_sent_once_on_5xx(
    conn: tuple[Connector, list[Event]], stub: Stub
) -> None:
    c, _ = conn
    stub.queue(status(503), status(503), status(200))
    with pytest.raises(HttpStatusError) as err:
        await c.execute("vendor", plain(stub, FAST), {"amount": 5}, idempotency_key="pay-8")
    assert err.value.status == 503
    assert stub.count == 1


async def test_a_keyed_post_the_vendor_deduplicates_is_retried_with_the_same_key(
    conn: tuple[Connector, list[Event]], stub: Stub
) -> None:
    c, _ = conn
    stub.queue(status(503), status(503), status(200))
    r = await c.execute("vendor", deduped(stub, FAST), {"amount": 5}, idempotency_key="pay-9")
    assert (r.status, r.attempts, stub.count) == (200, 3, 3)
    assert {req["headers"]["Idempotency-Key"] for req in stub.requests} == {"pay-9"}


async def test_idempotent_true_makes_a_plain_post_resendable(
    conn: tuple[Connector, list[Event]], stub: Stub
) -> None:
    c, _ = conn
    stub.queue(status(503), status(200))
    r = await c.execute(
        "vendor", plain(stub, FAST), {"a": 1}, idempotency_key="pay-10", idempotent=True
    )
    assert (r.status, stub.count) == (200, 2)


async def test_a_read_timeout_on_a_plain_keyed_post_is_not_resent(
    conn: tuple[Connector, list[Event]], stub: Stub
) -> None:
    c, _ = conn
    stub.queue(hang())
    with pytest.raises(RequestTimeout):
        await c.execute("vendor", plain(stub, FAST, SHORT), {"amount": 5}, idempotency_key="pay-11")
    assert stub.count == 1


# -- rule 19: at most once where the vendor cannot deduplicate -------------------------------------


async def test_an_unknown_outcome_keeps_the_key_unknown_until_forgotten(
    conn: tuple[Connector, list[Event]], stub: Stub, clock: FakeClock
) -> None:
    c, seen = conn
    ep = plain(stub, FAST, SHORT)
    stub.queue(hang())
    with pytest.raises(RequestTimeout):
        await c.execute("vendor", ep, {"amount": 5}, idempotency_key="pay-12")
    assert [type(e) for e in seen if isinstance(e, OutcomeUnknownEvent)] == [OutcomeUnknownEvent]
    clock.advance(LEASE * 10)  # long past any lease: the key is still not free
    with pytest.raises(OutcomeUnknown) as err:
        await c.execute("vendor", ep, {"amount": 5}, idempotency_key="pay-12")
    assert (err.value.service, err.value.idempotency_key) == ("vendor", "pay-12")
    assert "pay-12" not in str(err.value)
    assert stub.count == 1
    # The application checked with the vendor: nothing went through. It forgets the key.
    assert await c.forget("vendor", "pay-12") is True
    assert await c.forget("vendor", "pay-12") is False
    r = await c.execute("vendor", ep, {"amount": 5}, idempotency_key="pay-12")
    assert (r.status, r.replayed, stub.count) == (200, False, 2)


async def test_the_unknown_state_lasts_the_keys_ttl(
    conn: tuple[Connector, list[Event]], stub: Stub, clock: FakeClock
) -> None:
    c, _ = conn
    ep = plain(stub, ONE_SHOT, SHORT)
    key = IdempotencyKey("pay-13", ttl=3600.0)
    stub.queue(hang())
    with pytest.raises(RequestTimeout):
        await c.execute("vendor", ep, {"amount": 5}, idempotency_key=key)
    clock.advance(3599.0)
    with pytest.raises(OutcomeUnknown):
        await c.execute("vendor", ep, {"amount": 5}, idempotency_key=key)
    clock.advance(2.0)
    assert (await c.execute("vendor", ep, {"amount": 5}, idempotency_key=key)).status == 200


async def test_a_resendable_call_with_an_unknown_outcome_releases_its_key(
    conn: tuple[Connector, list[Event]], stub: Stub
) -> None:
    c, _ = conn
    ep = Endpoint(
        stub.url(), "POST", retry=ONE_SHOT, timeout=SHORT, idempotency_header="Idempotency-Key"
    )
    stub.queue(hang())
    with pytest.raises(RequestTimeout):
        await c.execute("vendor", ep, {"amount": 5}, idempotency_key="pay-14")
    r = await c.execute("vendor", ep, {"amount": 5}, idempotency_key="pay-14")
    assert (r.status, stub.count) == (200, 2)  # the vendor dedups the resend by its header


async def test_a_call_cancelled_while_at_the_vendor_leaves_its_key_unknown(
    conn: tuple[Connector, list[Event]], stub: Stub
) -> None:
    c, _ = conn
    stub.queue(hang())
    task = asyncio.ensure_future(
        c.execute("vendor", plain(stub), {"amount": 5}, idempotency_key="pay-15")
    )
    async with asyncio.timeout(5.0):
        await stub.arrived.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with pytest.raises(OutcomeUnknown):
        await c.execute("vendor", plain(stub), {"amount": 5}, idempotency_key="pay-15")
    assert stub.count == 1


async def test_a_dead_workers_non_resendable_claim_becomes_unknown_not_free(
    conn: tuple[Connector, list[Event]], backend: Backend, stub: Stub, clock: FakeClock
) -> None:
    """What another worker's connector leaves behind when it dies holding the key."""
    c, _ = conn
    ep = plain(stub)
    key = IdempotencyKey("pay-16")
    fp = fingerprint("POST", ep.url, {"amount": 5})
    dead = await backend.claim("vendor", None, key.digest, fp, LEASE, unknown_ttl=key.ttl)
    assert dead.state == "acquired"
    clock.advance(LEASE)
    with pytest.raises(OutcomeUnknown):
        await c.execute("vendor", ep, {"amount": 5}, idempotency_key=key)
    assert stub.count == 0


async def test_the_connector_arms_non_resendable_claims_and_only_those(
    conn: tuple[Connector, list[Event]], faulty: Faulty, stub: Stub, clock: FakeClock
) -> None:
    """A key whose holder vanished: after the lease it is unknown only if it was not resendable."""
    c, _ = conn
    faulty.fail["complete"] = 10**6  # the answers are never stored: the keys stay claimed
    faulty.fail["extend"] = 10**6  # and no lease is renewed, as if their worker had died
    for ep, key in ((plain(stub), "pay-17"), (deduped(stub), "pay-18")):
        assert (await c.execute("vendor", ep, {"a": 1}, idempotency_key=key)).status == 200
    clock.advance(LEASE)
    with pytest.raises(OutcomeUnknown):
        await c.execute("vendor", plain(stub), {"a": 1}, idempotency_key="pay-17")
    r = await c.execute("vendor", deduped(stub), {"a": 1}, idempotency_key="pay-18")
    assert (r.status, r.replayed, stub.count) == (200, False, 3)  # the vendor dedups this one


async def test_call_without_idempotent_true_is_sent_at_most_once(
    conn: tuple[Connector, list[Event]],
) -> None:
    c, _ = conn
    sent = 0

    async def publish() -> str:
        nonlocal sent
        sent += 1
        raise RequestTimeout("no answer")

    with pytest.raises(RequestTimeout):
        await c.call("sns", "Publish", publish, idempotency_key="sms-1", retry=FAST)
    with pytest.raises(OutcomeUnknown):
        await c.call("sns", "Publish", publish, idempotency_key="sms-1", retry=FAST)
    assert sent == 1


class _Lines:
    """A logger that records every line's name."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def bind(self, **_: Any) -> _Lines:
        return self

    def is_enabled_for(self, level: int) -> bool:
        return True

    def __getattr__(self, level: str) -> Any:
        return lambda name, **_: self.names.append(name)


async def test_a_cancel_during_the_store_stores_once_without_a_false_lease_lost(
    faulty: Faulty, stub: Stub, clock: FakeClock
) -> None:
    lines = _Lines()
    gate, entered = asyncio.Event(), asyncio.Event()
    real_complete = faulty.__getattr__("complete")

    async def slow_complete(*args: Any, **kwargs: Any) -> Any:
        # The write lands (a queued Redis command always runs), its reply comes late.
        stored = await real_complete(*args, **kwargs)
        entered.set()
        await gate.wait()
        return stored

    faulty.complete = slow_complete  # type: ignore[attr-defined]
    async with Connector(backend=faulty, clock=clock, logger=lines) as c:  # type: ignore[arg-type]
        task = asyncio.ensure_future(
            c.execute("vendor", deduped(stub), {"a": 1}, idempotency_key="pay-19")
        )
        async with asyncio.timeout(5.0):
            await entered.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        gate.set()
        again = await c.execute("vendor", deduped(stub), {"a": 1}, idempotency_key="pay-19")
    assert (again.replayed, stub.count) == (True, 1)
    assert "nexus.idempotency.lease_lost" not in lines.names


async def test_a_result_that_cannot_be_stored_settles_the_key_instead_of_holding_it(
    conn: tuple[Connector, list[Event]],
) -> None:
    c, _ = conn
    sent = 0

    async def publish() -> object:
        nonlocal sent
        sent += 1
        return object()  # msgpack cannot encode it

    async with asyncio.timeout(5.0):  # a key left "in progress" would make these wait
        # Resendable: the key is released, the next call runs again.
        for _ in range(2):
            with pytest.raises(TypeError):
                await c.call("sns", "Get", publish, idempotency_key="sms-2", idempotent=True)
        assert sent == 2
        # Not resendable: it was sent, so the key is kept unknown, not held or freed.
        with pytest.raises(TypeError):
            await c.call("sns", "Publish", publish, idempotency_key="sms-3")
        with pytest.raises(OutcomeUnknown):
            await c.call("sns", "Publish", publish, idempotency_key="sms-3")
    assert sent == 3


@pytest.mark.parametrize("endpoint", [deduped, plain])
async def test_a_cancel_after_the_vendor_answered_stores_the_answer_not_frees_the_key(
    faulty: Faulty, stub: Stub, clock: FakeClock, endpoint: Any
) -> None:
    """Found by the 18-minute chaos run: cancelled during the breaker record that follows a 200
    (recorded because the breaker had a failure), the key was released, and the next call with
    it charged again on a vendor without idempotency."""
    gate, entered = asyncio.Event(), asyncio.Event()
    real_record = faulty.__getattr__("record")

    async def slow_record(*args: Any, **kwargs: Any) -> Any:
        state = await real_record(*args, **kwargs)
        entered.set()
        await gate.wait()  # the caller is cancelled while this reply is on its way
        return state

    async with Connector(backend=faulty, clock=clock) as c:  # type: ignore[arg-type]
        stub.queue(status(500))  # a failure on record: the next success is recorded too
        with pytest.raises(HttpStatusError):
            await c.execute("vendor", endpoint(stub), {"n": 0}, idempotency_key="warm-up")
        faulty.record = slow_record  # type: ignore[attr-defined]
        stub.queue(status(200, b'{"id":"ch_1"}'))
        task = asyncio.ensure_future(
            c.execute("vendor", endpoint(stub), {"a": 1}, idempotency_key="pay-20")
        )
        async with asyncio.timeout(5.0):
            await entered.wait()
        task.cancel()
        gate.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        async with asyncio.timeout(5.0):
            again = await c.execute("vendor", endpoint(stub), {"a": 1}, idempotency_key="pay-20")
    assert (again.status, again.body, again.replayed) == (200, b'{"id":"ch_1"}', True)
    assert stub.count == 2  # the warm-up and the payment, once
