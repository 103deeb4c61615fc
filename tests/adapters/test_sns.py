"""SNS adapter against moto's real SNS server (through a fault-injecting loopback proxy)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from nexus_connector_async import (
    Connector,
    ConnectorError,
    IdempotencyKey,
    InvalidRequest,
    MemoryBackend,
    RateLimitConfig,
    RequestTimeout,
    RetryPolicy,
)
from nexus_connector_async.adapters import (
    AuthenticationFailed,
    BulkSendInterrupted,
    InvalidPhoneNumber,
    Money,
    OptedOut,
    PhoneNumberRejected,
    SmsGateway,
    SmsMessage,
    SpendLimitExceeded,
    VendorError,
)
from nexus_connector_async.adapters.sns import SnsError, SnsSmsAdapter, SnsThrottled
from nexus_connector_async.testing import capture_logs
from tests.adapters._moto import (
    ACCESS_KEY,
    SECRET_KEY,
    MotoServer,
    SnsSimulator,
    attributes,
    published,
)

aioboto3 = pytest.importorskip("aioboto3", reason="the SNS adapter needs the `sns` extra")

FAST = RetryPolicy(max_attempts=3, base_delay=0.0, max_delay=0.0)
TO = "+14155552671"
PRICE = Money("0.00645", "USD")


@pytest.fixture
async def connector() -> AsyncIterator[Connector]:
    async with Connector() as c:
        yield c


@pytest.fixture
def make(connector: Connector, proxy: SnsSimulator, aws_session: Any) -> Any:
    def build(conn: Connector | None = None, **kw: Any) -> SnsSmsAdapter:
        kw.setdefault("retry", FAST)
        kw.setdefault("session", aws_session)
        return SnsSmsAdapter(conn or connector, endpoint_url=proxy.url, **kw)

    return build


@pytest.fixture
def sns(make: Any) -> SnsSmsAdapter:
    adapter: SnsSmsAdapter = make(sender_id="NEXUS", max_price=Money("0.50", "USD"))
    return adapter


async def set_account_limit(moto: MotoServer, session: Any, dollars: str) -> None:
    async with session.client("sns", region_name="us-east-1", endpoint_url=moto.url) as client:
        await client.set_sms_attributes(attributes={"MonthlySpendLimit": dollars})


# -- publishing ------------------------------------------------------------------------------------


async def test_send_publishes_to_the_number_with_the_sms_attributes(
    sns: SnsSmsAdapter, proxy: SnsSimulator, moto: MotoServer
) -> None:
    result = await sns.send(TO, "Your code is 123456")

    [sms] = await published(moto.url)
    assert (sms["phone_number"], sms["message"]) == (TO, "Your code is 123456")
    assert result.message_id == sms["message_id"]
    assert (result.to, result.status, result.segments, result.encoding) == (
        TO,
        "accepted",
        1,
        "GSM-7",
    )
    assert result.price is None
    assert not result.replayed
    [publish] = proxy.actions("Publish")
    assert attributes(publish) == {
        "AWS.SNS.SMS.SMSType": ("String", "Transactional"),
        "AWS.SNS.SMS.SenderID": ("String", "NEXUS"),
        "AWS.SNS.SMS.MaxPrice": ("Number", "0.50"),
    }


async def test_a_promotional_adapter_without_sender_sends_only_the_type(
    make: Any, proxy: SnsSimulator
) -> None:
    await make(sms_type="Promotional").send(TO, "sale!")
    [publish] = proxy.actions("Publish")
    assert attributes(publish) == {"AWS.SNS.SMS.SMSType": ("String", "Promotional")}


async def test_one_client_is_created_lazily_and_closed_with_the_connector(
    proxy: SnsSimulator, aws_session: Any
) -> None:
    async with Connector() as connector:
        sns = SnsSmsAdapter(connector, endpoint_url=proxy.url, session=aws_session)
        assert not sns._clients.open
        await asyncio.gather(*(sns.send(TO, f"m{i}") for i in range(5)))
        [client] = sns._clients.open.values()
        assert client is not None
        await sns.validate_number(TO)
        assert list(sns._clients.open.values()) == [client]
    assert not sns._clients.open
    with pytest.raises(InvalidRequest, match="closed"):
        await sns.validate_number(TO)


async def test_the_adapter_satisfies_the_sms_gateway_protocol(sns: SnsSmsAdapter) -> None:
    assert isinstance(sns, SmsGateway)


# -- refused before publishing -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "reason"),
    [("4155552671", "not_e164"), ("+44 20 7183 8750", "not_e164"), ("+0441", "bad_country_code")],
)
async def test_non_e164_numbers_are_refused_before_any_call(
    sns: SnsSmsAdapter, proxy: SnsSimulator, number: str, reason: str
) -> None:
    with pytest.raises(InvalidPhoneNumber) as info:
        await sns.send(number, "hi")
    assert info.value.reason == reason
    with pytest.raises(InvalidPhoneNumber):
        await sns.validate_number(number)
    assert proxy.seen == []


@pytest.mark.parametrize(
    ("body", "media", "match"),
    [
        ("", (), "empty"),
        ("a" * 1601, (), "1601 characters"),
        ("\u00e9" * 801, (), "1602 bytes"),
        ("hi", ("https://e.com/a.png",), "text SMS only"),
    ],
)
async def test_bad_bodies_are_refused_before_any_call(
    sns: SnsSmsAdapter, proxy: SnsSimulator, body: str, media: tuple[str, ...], match: str
) -> None:
    with pytest.raises(InvalidRequest, match=match):
        await sns.send(TO, body, media_urls=media)
    assert proxy.seen == []


async def test_the_1600_byte_budget_is_accepted(sns: SnsSmsAdapter, moto: MotoServer) -> None:
    result = await sns.send(TO, "\u00e9" * 800)  # 800 characters, 1600 bytes in UTF-8
    assert (result.encoding, result.segments) == ("GSM-7", 6)  # é is in the GSM alphabet
    assert len(await published(moto.url)) == 1


@pytest.mark.parametrize("sender_id", ["AB", "ABCDEFGHIJKL", "12345", "MY SHOP", "MY_SHOP", ""])
def test_sender_ids_follow_the_developer_guide_rule(sender_id: str) -> None:
    with pytest.raises(InvalidRequest, match="sender_id"):
        SnsSmsAdapter(Connector(), sender_id=sender_id)


@pytest.mark.parametrize("sender_id", ["ABC", "A-1", "Nexus2024", "ABCDEFGHIJK"])
def test_valid_sender_ids_are_kept(sender_id: str) -> None:
    assert SnsSmsAdapter(Connector(), sender_id=sender_id).sender_id == sender_id


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sms_type": "Marketing"}, "sms_type"),
        ({"max_price": Money("0", "USD")}, "max_price"),
        ({"max_price": Money("0.5", "EUR")}, "USD"),
        ({"monthly_limit": Money("-1", "USD")}, "monthly_limit"),
        ({"region": ""}, "region"),
        ({"timeout": 0}, "timeout"),
    ],
)
def test_bad_configuration_is_refused(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidRequest, match=match):
        SnsSmsAdapter(Connector(), **kwargs)


# -- errors, retries, at most once ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("Throttling", 400),
        ("ThrottlingException", 400),
        ("Throttled", 429),
        ("ThrottledException", 400),
        ("TooManyRequestsException", 400),
        ("SlowDown", 429),
    ],
)
async def test_throttling_is_retried_by_the_pipeline_and_never_by_botocore(
    make: Any, proxy: SnsSimulator, moto: MotoServer, code: str, status: int
) -> None:
    once = make(retry=RetryPolicy(max_attempts=1))
    proxy.fail("Publish", code, status=status, message="Rate exceeded")
    with pytest.raises(SnsThrottled) as info:
        await once.send(TO, "hi")
    assert info.value.code == code
    assert len(proxy.actions("Publish")) == 1  # botocore's own retries are off

    proxy.fail("Publish", code, status=status, message="Rate exceeded", times=2)
    result = await make().send(TO, "hi")
    assert result.ok
    assert len(proxy.actions("Publish")) == 4
    assert len(await published(moto.url)) == 1


async def test_an_internal_error_is_not_resent(
    sns: SnsSmsAdapter, proxy: SnsSimulator, moto: MotoServer
) -> None:
    proxy.fail("Publish", "InternalError", status=500)
    with pytest.raises(SnsError) as info:
        await sns.send(TO, "hi")
    assert info.value.transient
    assert len(proxy.actions("Publish")) == 1


async def test_retry_unknown_opts_in_to_resending_after_an_internal_error(
    make: Any, proxy: SnsSimulator, moto: MotoServer
) -> None:
    proxy.fail("Publish", "InternalError", status=500)
    result = await make(retry_unknown=True).send(TO, "hi")
    assert result.ok
    assert len(proxy.actions("Publish")) == 2


async def test_a_timeout_after_publishing_is_not_retried(
    make: Any, proxy: SnsSimulator, moto: MotoServer
) -> None:
    sns = make(timeout=0.5)
    await sns.spend()  # client created, account limit cached: only the publish is held
    gate = asyncio.Event()
    proxy.hold(gate)
    with pytest.raises(RequestTimeout):
        await sns.send(TO, "hi", idempotency_key=IdempotencyKey("otp-7"))
    gate.set()
    assert len(proxy.actions("Publish")) == 1
    assert len(await published(moto.url)) == 1  # it went out: a resend would duplicate it
    # The unknown outcome keeps its reservation: spend errs on the safe side.
    assert (await sns.spend()).month_to_date == PRICE


@pytest.mark.parametrize(
    ("code", "status", "message", "error_type"),
    [
        ("AuthorizationError", 403, "not authorized to perform SNS:Publish", AuthenticationFailed),
        ("InvalidClientTokenId", 403, "The security token is invalid", AuthenticationFailed),
        ("OptedOut", 400, "Phone number is opted out", OptedOut),
        (
            "InvalidParameter",
            400,
            "Invalid parameter: PhoneNumber Reason: +14155552671 is not valid",
            PhoneNumberRejected,
        ),
        ("InvalidParameter", 400, "Invalid parameter: Message too long", SnsError),
    ],
)
async def test_client_errors_map_to_typed_errors_and_release_the_spend(
    sns: SnsSmsAdapter,
    proxy: SnsSimulator,
    code: str,
    status: int,
    message: str,
    error_type: type[VendorError],
) -> None:
    proxy.fail("Publish", code, status=status, message=message)
    with pytest.raises(error_type) as info:
        await sns.send(TO, "hi")
    error = info.value
    assert isinstance(error, ConnectorError)
    assert (error.vendor, error.code, error.status) == ("sns", code, status)
    assert error.request_id == "proxy-req-1"
    assert len(proxy.actions("Publish")) == 1
    assert (await sns.spend()).month_to_date == Money("0", "USD")


async def test_an_idempotency_key_replays_instead_of_publishing_again(
    sns: SnsSmsAdapter, moto: MotoServer
) -> None:
    key = IdempotencyKey("receipt-99")
    first = await sns.send(TO, "thanks", idempotency_key=key)
    again = await sns.send(TO, "thanks", idempotency_key=key)
    assert len(await published(moto.url)) == 1
    assert again.message_id == first.message_id
    assert (first.replayed, again.replayed) == (False, True)
    assert (await sns.spend()).month_to_date == PRICE


# -- numbers and spend -----------------------------------------------------------------------------


async def test_validate_number_asks_sns_about_opt_outs(
    sns: SnsSmsAdapter, proxy: SnsSimulator
) -> None:
    # moto reports numbers ending in 99 as opted out.
    assert (await sns.validate_number("+14155550199")).opted_out is True
    info = await sns.validate_number(TO)
    assert (info.number, info.valid, info.opted_out) == (TO, True, False)
    assert [s.params["phoneNumber"] for s in proxy.actions("CheckIfPhoneNumberIsOptedOut")] == [
        "+14155550199",
        TO,
    ]


async def test_spend_reports_segments_times_price_and_the_account_limit(
    make: Any, moto: MotoServer, aws_session: Any
) -> None:
    sns = make()
    await sns.send(TO, "one segment")
    await sns.send(TO, "x" * 161)  # two segments
    report = await sns.spend()
    assert report.month_to_date == Money(PRICE.amount * 3, "USD")
    assert (report.limit, report.account_limit) == (None, None)
    assert len(report.month) == 7

    await set_account_limit(moto, aws_session, "5")
    report = await sns.spend()
    assert report.limit == report.account_limit == Money("5", "USD")


async def test_a_send_that_would_pass_the_monthly_limit_is_refused_before_publishing(
    make: Any, proxy: SnsSimulator, moto: MotoServer
) -> None:
    sns = make(monthly_limit=Money("0.02", "USD"))
    for _ in range(3):
        await sns.send(TO, "hi")  # 3 x 0.00645 = 0.01935
    with pytest.raises(SpendLimitExceeded, match=r"over the 0\.02 USD limit"):
        await sns.send(TO, "hi")
    assert len(await published(moto.url)) == 3
    assert len(proxy.actions("Publish")) == 3
    assert (await sns.spend()).month_to_date == Money(PRICE.amount * 3, "USD")


async def test_the_account_spend_limit_guards_sends_when_no_local_limit_is_set(
    make: Any, moto: MotoServer, aws_session: Any
) -> None:
    await set_account_limit(moto, aws_session, "1")
    sns = make(price_per_segment=Money("0.40", "USD"))
    await sns.send(TO, "a")
    await sns.send(TO, "b")
    with pytest.raises(SpendLimitExceeded):
        await sns.send(TO, "c")
    assert [m["message"] for m in await published(moto.url)] == ["a", "b"]


async def test_workers_sharing_a_backend_share_the_spend(make: Any, moto: MotoServer) -> None:
    backend = MemoryBackend()
    limit = Money("0.02", "USD")
    async with Connector(backend=backend) as one, Connector(backend=backend) as two:
        workers = [make(one, monthly_limit=limit), make(two, monthly_limit=limit)]
        outcomes = [
            await workers[i % 2].send_bulk([(TO, f"m{i}")], concurrency=1) for i in range(5)
        ]
    sent = [r[0].ok for r in outcomes]
    assert sent == [True, True, True, False, False]
    assert all(isinstance(r[0].error, SpendLimitExceeded) for r in outcomes[3:])
    assert len(await published(moto.url)) == 3


# -- bulk ----------------------------------------------------------------------------------------


async def test_bulk_results_are_in_order_with_failures_in_place(
    make: Any, proxy: SnsSimulator, moto: MotoServer
) -> None:
    numbers = [f"+1415555{i:04d}" for i in range(120)]
    for n in numbers[::5]:
        proxy.reject_number(n, "OptedOut", "Phone number is opted out")
    results = await make().send_bulk([(n, f"to {n}") for n in numbers], concurrency=10)
    assert [r.to for r in results] == numbers
    # moto reports numbers ending in 99 as opted out: the adapter checks and does not publish.
    accepted = [i % 5 != 0 and not n.endswith("99") for i, n in enumerate(numbers)]
    assert [r.ok for r in results] == accepted
    assert all(
        isinstance(r.error, OptedOut) for r, ok in zip(results, accepted, strict=True) if not ok
    )
    sent = await published(moto.url)
    assert sorted(m["phone_number"] for m in sent) == sorted(
        n for n, ok in zip(numbers, accepted, strict=True) if ok
    )
    assert all(m["message"] == f"to {m['phone_number']}" for m in sent)


async def test_a_malformed_bulk_item_stops_intake_and_nothing_after_it_is_published(
    make: Any, moto: MotoServer
) -> None:
    first = [(f"+1415555{i:04d}", f"m{i}") for i in range(3)]
    bad = SmsMessage(TO, "media", media_urls=None)  # type: ignore[arg-type]
    after = [(f"+1415556{i:04d}", f"after {i}") for i in range(3)]
    with pytest.raises(BulkSendInterrupted) as caught:
        await make().send_bulk([*first, bad, *after], concurrency=2)
    assert caught.value.position == 3
    assert isinstance(caught.value.__cause__, InvalidRequest)
    assert [r.to for r in caught.value.results] == [to for to, _ in first]
    assert all(r.ok for r in caught.value.results)
    sent = await published(moto.url)
    assert sorted(m["phone_number"] for m in sent) == [to for to, _ in first]


async def test_bulk_respects_the_rate_limit(make: Any, moto: MotoServer) -> None:
    sns = make(rate_limit=RateLimitConfig.per_hour(1, burst=25))
    results = await sns.send_bulk(((TO, f"m{i}") for i in range(60)), concurrency=10)
    assert sum(r.ok for r in results) == 25
    assert len(await published(moto.url)) == 25
    assert (await sns.spend()).month_to_date == Money(PRICE.amount * 25, "USD")


# -- secrets ------------------------------------------------------------------------------------


async def test_aws_keys_never_reach_logs_reprs_or_errors(make: Any, proxy: SnsSimulator) -> None:
    sns = make()
    errors: list[BaseException] = []
    with capture_logs() as logs:
        await sns.send(TO, "hi")
        await sns.validate_number(TO)
        proxy.fail("Publish", "AuthorizationError", status=403, message="denied")
        try:
            await sns.send(TO, "hi")
        except ConnectorError as exc:
            errors.append(exc)
        await sns.send_bulk([("+1", "bad"), (TO, "ok")])
    assert logs
    assert errors
    text = json.dumps(logs, default=repr) + repr(sns) + "".join(f"{e!r}{e}" for e in errors)
    assert SECRET_KEY not in text
    assert ACCESS_KEY not in text


def test_spend_amounts_are_decimal_exact() -> None:
    assert Money(PRICE.amount * 3, "USD").amount == Decimal("0.01935")


async def test_two_aws_accounts_never_replay_each_others_sends(make: Any, moto: MotoServer) -> None:
    """api.md rule 28: the same key from two accounts' adapters (same service name) is two sends."""

    def account(n: str) -> SnsSmsAdapter:
        session = aioboto3.Session(
            aws_access_key_id=f"AKIAACCOUNT{n}",
            aws_secret_access_key="secret",
            region_name="us-east-1",
        )
        adapter: SnsSmsAdapter = make(session=session, check_opt_out=False)
        return adapter

    a, b = account("A"), account("B")
    key = IdempotencyKey("otp-1")
    first = await a.send(TO, "code 1", idempotency_key=key)
    other = await b.send(TO, "code 1", idempotency_key=key)
    again = await a.send(TO, "code 1", idempotency_key=key)
    assert (first.replayed, other.replayed, again.replayed) == (False, False, True)
    assert other.message_id != first.message_id
    assert again.message_id == first.message_id
    assert len(await published(moto.url)) == 2
