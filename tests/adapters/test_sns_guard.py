"""The SNS spend guard fails closed, unreadable limits are unknown, every botocore error is typed,
opted-out numbers are not "accepted" (api.md rule 39), against moto's real SNS server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from nexus_connector_async import (
    BackendUnavailable,
    Connector,
    ConnectorError,
    CredentialRefreshError,
    RedisBackend,
    RetryPolicy,
)
from nexus_connector_async.adapters import Money, OptedOut
from nexus_connector_async.adapters.sns import SnsClientError, SnsSmsAdapter
from nexus_connector_async.testing import capture_logs
from tests.adapters._moto import MotoServer, SnsSimulator, published

aioboto3 = pytest.importorskip("aioboto3", reason="the SNS adapter needs the `sns` extra")
from botocore import exceptions as bx  # noqa: E402

FAST = RetryPolicy(max_attempts=3, base_delay=0.0, max_delay=0.0)
TO = "+14155552671"


@pytest.fixture
async def connector() -> AsyncIterator[Connector]:
    async with Connector() as c:
        yield c


def make(connector: Connector, proxy: SnsSimulator, session: Any, **kw: Any) -> SnsSmsAdapter:
    kw.setdefault("retry", FAST)
    return SnsSmsAdapter(connector, endpoint_url=proxy.url, session=session, **kw)


@pytest.mark.parametrize("mode", ["local", "fail_open", "fail_closed"])
async def test_the_spend_guard_fails_closed_while_the_backend_cannot_count(
    proxy: SnsSimulator, aws_session: Any, mode: Any
) -> None:
    backend = RedisBackend.from_url("redis://127.0.0.1:9", on_unavailable=mode)
    async with Connector(backend=backend) as connector:
        sns = make(connector, proxy, aws_session, monthly_limit=Money("1.00", "USD"))
        for _ in range(3):
            with pytest.raises(BackendUnavailable):
                await sns.send(TO, "hi")
    assert proxy.actions("Publish") == []


async def test_an_unreadable_account_limit_is_unknown_with_a_warning_not_a_failed_send(
    connector: Connector, proxy: SnsSimulator, aws_session: Any, moto: MotoServer
) -> None:
    proxy.fail("GetSMSAttributes", "AuthorizationError", status=403, times=10)
    sns = make(connector, proxy, aws_session)  # no monthly_limit: the account's is wanted
    with capture_logs() as logs:
        first = await sns.send(TO, "one")
        second = await sns.send(TO, "two")
    assert first.ok
    assert second.ok
    warnings = [e for e in logs if e["event"] == "nexus.sns.account_limit_unknown"]
    assert len(warnings) == 1  # asked once per limit_refresh, not once per send
    assert warnings[0]["code"] == "AuthorizationError"
    assert len(proxy.actions("GetSMSAttributes")) == 1
    assert len(await published(moto.url)) == 2
    report = await sns.spend()
    assert report.account_limit is None


class _FailingClient:
    def __init__(self, exc: Exception) -> None:
        self._exc = exc

    async def publish(self, **_: Any) -> Any:
        raise self._exc

    async def check_if_phone_number_is_opted_out(self, **_: Any) -> Any:
        return {"isOptedOut": False}

    async def get_sms_attributes(self, **_: Any) -> Any:
        return {"attributes": {}}


@pytest.mark.parametrize(
    ("exc", "error_type"),
    [
        (
            bx.CredentialRetrievalError(provider="assume-role", error_msg="denied"),
            CredentialRefreshError,
        ),
        (bx.NoRegionError(), SnsClientError),
        (bx.UnknownEndpointError(service_name="sns", region_name="mars-1"), SnsClientError),
        (bx.SSOTokenLoadError(error_msg="expired"), CredentialRefreshError),
    ],
)
async def test_every_botocore_error_is_typed_and_the_reservation_is_refunded(
    connector: Connector,
    proxy: SnsSimulator,
    aws_session: Any,
    exc: Exception,
    error_type: type[ConnectorError],
) -> None:
    sns = make(connector, proxy, aws_session, monthly_limit=Money("5.00", "USD"))
    sns._clients.open[None] = _FailingClient(exc)
    with pytest.raises(error_type) as caught:
        await sns.send(TO, "hi")
    assert getattr(caught.value, "sent", False) is False
    assert (await sns.spend()).month_to_date == Money("0", "USD")


class _BrokenSession:
    def client(self, *_: Any, **__: Any) -> Any:
        raise bx.UnknownServiceError(service_name="sns", known_service_names="s3")


async def test_a_client_that_cannot_be_created_is_a_typed_error_and_refunds(
    connector: Connector, proxy: SnsSimulator
) -> None:
    sns = make(
        connector, proxy, _BrokenSession(), monthly_limit=Money("5.00", "USD"), check_opt_out=False
    )
    with pytest.raises(SnsClientError):
        await sns.send(TO, "hi")
    assert (await sns.spend()).month_to_date == Money("0", "USD")


async def test_an_opted_out_number_is_not_accepted_and_not_published(
    connector: Connector, proxy: SnsSimulator, aws_session: Any, moto: MotoServer
) -> None:
    opted_out = "+14155550199"  # moto: numbers ending in 99 opted out
    sns = make(connector, proxy, aws_session)
    with pytest.raises(OptedOut) as caught:
        await sns.send(opted_out, "hi")
    assert caught.value.code == "OptedOut"
    results = await sns.send_bulk([(opted_out, "a"), (TO, "b")])
    assert results[0].status == "error"
    assert results[0].sent is False
    assert isinstance(results[0].error, OptedOut)
    assert results[1].ok
    assert [m["phone_number"] for m in await published(moto.url)] == [TO]
    # The answer is reused: one check per number, not one per message.
    assert len(proxy.actions("CheckIfPhoneNumberIsOptedOut")) == 2


async def test_the_spend_estimate_splits_at_word_boundaries_like_sns(
    connector: Connector, proxy: SnsSimulator, aws_session: Any
) -> None:
    price = Money("0.01", "USD")
    sns = make(connector, proxy, aws_session, price_per_segment=price, check_opt_out=False)
    words = "x" * 100 + " " + "y" * 100 + " " + "z" * 100  # 302 septets: 2 full parts of 153
    result = await sns.send(TO, words)
    assert result.segments == 3  # but no part can hold two of these words
    assert (await sns.spend()).month_to_date == Money("0.03", "USD")
