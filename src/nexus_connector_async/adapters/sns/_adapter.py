"""`SnsSmsAdapter`: direct-to-phone SMS through AWS SNS (aioboto3), guarded by the pipeline.

botocore's own retries are off (one attempt per call) so the pipeline alone decides: throttling
is retried with backoff, a publish whose outcome is unknown is not re-sent (SNS does not
de-duplicate) unless `retry_unknown=True`. The per-account clients are `_clients`' concern,
the shared spend counter `_spend`'s and the billed parts `_segments`'; this module holds the
operations and the guard that runs before each publish.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Final

from ..._clock import SYSTEM_CLOCK, Clock
from ..._config import (
    CircuitBreakerConfig,
    ConcurrencyLimit,
    RateLimitConfig,
    RetryPolicy,
    Timeouts,
)
from ..._connector import Connector
from ..._errors import ConnectorError, InvalidRequest
from ..._logging import get_logger
from ..._models import IdempotencyKey
from .._lru import remember
from .._money import Money
from .._payments import scoped_key
from .._phone import count_segments, validate_e164, validate_sms_body
from .._sms import BulkSender, PhoneNumberInfo, SmsResult
from .._vendor import Policies, VendorClient
from ._clients import SessionFactory, SnsClients
from ._errors import map_exception, opted_out, outcome_known_unsent
from ._models import SmsType, SpendReport, message_attributes, validate_sender_id
from ._segments import sns_segments
from ._spend import SpendTracker, parse_limit, usd

__all__ = ["SnsSmsAdapter"]

_MAX_BODY: Final = 1600  # SNS's per-publish budget; the developer guide says bytes
_SMS_TYPES: Final = ("Transactional", "Promotional")
_DEFAULT_RETRY: Final = RetryPolicy(max_attempts=4, base_delay=0.2, max_delay=5.0)
#: An estimate (US destinations; rates vary by country): configure `price_per_segment`.
DEFAULT_PRICE_PER_SEGMENT: Final = Money("0.00645", "USD")
#: How long an opt-out answer is reused, and for how many numbers.
_OPT_OUT_TTL: Final = 300.0
_OPT_OUT_CACHE: Final = 10_000

_log = get_logger()


class SnsSmsAdapter(BulkSender):
    """SMS to phone numbers through SNS `Publish`, with a spend guard shared by all workers.

    One aioboto3 client per adapter, created on first use and closed with the connector.
    Instead of one `session`, `sessions` (a function of the tenant id returning that tenant's
    `aioboto3.Session`, or an awaitable of one) makes each tenant publish with its own AWS
    account: it is called once per tenant, and that tenant's client is kept until the
    connector closes. Each tenant then has its own spend counter, `monthly_limit`, account
    limit and opt-out answers, as each AWS account has its own (api.md rule 37).
    `monthly_limit` (USD) is checked before each publish against the month-to-date spend that
    the adapter keeps in the connector's backend (`price_per_segment` x segments); without it
    the account's `MonthlySpendLimit` is used (read every `limit_refresh` seconds). Keep bulk
    `concurrency` at or below `max_connections`: a wait for a pooled connection counts against
    `timeout`, and a timed-out publish is reported as an unknown outcome.
    `concurrency_limit` caps the publishes in flight across every worker sharing the
    connector's backend (one AWS account's SMS throughput is shared by all of them); with
    `sessions` give it `scope="tenant"` for one cap per tenant's account.

    The spend guard fails closed: while the backend cannot count, sends raise
    `BackendUnavailable` (nothing published) whatever its `on_unavailable` mode. An account
    limit that cannot be read (a role without `sns:GetSMSAttributes`) is unknown: a warning is
    logged and sends go on against `monthly_limit` only. SNS accepts a Publish to a number that
    opted out and silently drops it, so with `check_opt_out` (the default) each number is
    checked first (answers reused for 5 minutes) and an opted-out one raises `OptedOut`
    without publishing.
    """

    def __init__(
        self,
        connector: Connector,
        region: str = "us-east-1",
        endpoint_url: str | None = None,
        sender_id: str | None = None,
        sms_type: SmsType = "Transactional",
        session: Any = None,
        *,
        max_price: Money | None = None,
        price_per_segment: Money = DEFAULT_PRICE_PER_SEGMENT,
        monthly_limit: Money | None = None,
        service: str = "sns",
        rate_limit: RateLimitConfig | None = None,
        circuit_breaker: CircuitBreakerConfig | None = None,
        retry: RetryPolicy | None = None,
        timeout: float = 15.0,
        retry_unknown: bool = False,
        limit_refresh: float = 60.0,
        max_connections: int = 50,
        clock: Clock | None = None,
        check_opt_out: bool = True,
        sessions: SessionFactory | None = None,
        concurrency_limit: ConcurrencyLimit | None = None,
    ) -> None:
        if sessions is not None and (session is not None or not callable(sessions)):
            raise InvalidRequest(
                "give SnsSmsAdapter a session or sessions (a function of the tenant id), not both"
            )
        if not isinstance(region, str) or not region:
            raise InvalidRequest("region must be a non-empty str such as 'us-east-1'")
        if sms_type not in _SMS_TYPES:
            raise InvalidRequest("sms_type must be 'Transactional' or 'Promotional'")
        if not isinstance(timeout, int | float) or timeout <= 0:
            raise InvalidRequest("timeout must be > 0 seconds")
        self._connector = connector
        self.region = region
        self.endpoint_url = endpoint_url
        self.sender_id = None if sender_id is None else validate_sender_id(sender_id)
        self.sms_type: SmsType = sms_type
        self.max_price = usd("max_price", max_price, positive=True)
        per_segment = usd("price_per_segment", price_per_segment)
        assert per_segment is not None
        self.price_per_segment = per_segment
        self.monthly_limit = usd("monthly_limit", monthly_limit)
        self.service = service
        self.retry_unknown = bool(retry_unknown)
        self.check_opt_out = bool(check_opt_out)
        self._opt_outs: OrderedDict[tuple[str | None, str], tuple[float, bool]] = OrderedDict()
        # aioboto3 signs its own requests (SigV4 from the session): no credential provider.
        self._vendor = VendorClient(
            connector,
            service,
            Policies(
                Timeouts(total=float(timeout)),
                retry or _DEFAULT_RETRY,
                circuit_breaker or CircuitBreakerConfig(),
                rate_limit,
                concurrency_limit,
            ),
            sdk_errors=map_exception,
        )
        self._clients = SnsClients(
            self._vendor,
            region=region,
            endpoint_url=endpoint_url,
            session=session,
            sessions=sessions,
            timeout=float(timeout),
            max_connections=max_connections,
        )
        self._limit_refresh = limit_refresh
        self._clock = clock or SYSTEM_CLOCK
        self._attributes = message_attributes(sms_type, self.sender_id, self.max_price)
        # Per AWS account: None for the adapter's own, else the tenant id (with `sessions`).
        self._spends: dict[str | None, SpendTracker] = {}
        self._account_limits: dict[str | None, tuple[float, Money | None]] = {}  # (read at, value)
        self._limit_lock = asyncio.Lock()
        connector.on_close(self.aclose)

    def __repr__(self) -> str:
        return (
            f"SnsSmsAdapter(region={self.region!r}, endpoint_url={self.endpoint_url!r},"
            f" service={self.service!r})"
        )

    async def aclose(self) -> None:
        """Close the aioboto3 clients (the connector calls this when it closes)."""
        await self._clients.aclose()

    def _account(self, tenant_id: str | None) -> str | None:
        """Which AWS account a call goes to: None (the adapter's) or the tenant's."""
        return self._clients.account(tenant_id)

    def _spend(self, tenant_id: str | None) -> SpendTracker:
        account = self._account(tenant_id)
        tracker = self._spends.get(account)
        if tracker is None:
            tracker = SpendTracker(self._connector.backend, self.service, self._clock, account)
            self._spends[account] = tracker
        return tracker

    async def _call(
        self,
        operation: str,
        request: Any,
        *,
        idempotent: bool | None,
        idempotency_key: IdempotencyKey | None = None,
        tenant_id: str | None = None,
        publish: bool = False,
        fingerprint_data: Any = None,
        result_type: Any = Any,
    ) -> Any:
        """One SNS API call through the pipeline; `publish` ones take the rate and concurrency
        limits (they are what the account's SMS throughput counts)."""
        if idempotency_key is not None:  # scoped by the AWS account it is sent from (rule 28)
            account = await self._clients.account_id(tenant_id)
            idempotency_key = scoped_key(idempotency_key, account, tenant_id)
        return await self._vendor.call(
            operation,
            request,
            idempotent=idempotent,
            idempotency_key=idempotency_key,
            tenant_id=tenant_id,
            rate_limited=publish,
            concurrency_limited=publish,
            fingerprint_data=fingerprint_data,
            result_type=result_type,
        )

    async def _aws(self, method: str, tenant_id: str | None, **params: Any) -> Any:
        """One botocore call, its failures (client creation included) mapped to our errors."""
        client = await self._clients.client(tenant_id)
        return await self._vendor.sdk(lambda: getattr(client, method)(**params))

    # -- messaging ----------------------------------------------------------------------------

    async def send(
        self,
        to: str,
        body: str,
        *,
        media_urls: Sequence[str] = (),
        idempotency_key: IdempotencyKey | None = None,
        tenant_id: str | None = None,
    ) -> SmsResult:
        """Publish one SMS to an E.164 number.

        Raises `InvalidPhoneNumber`/`InvalidRequest` or `SpendLimitExceeded` before publishing;
        after: `OptedOut`, `PhoneNumberRejected`, `AuthenticationFailed`, `SnsThrottled` (once
        retries ran out), `SnsError`, `RequestTimeout`/`ConnectionFailed`.
        """
        to = validate_e164(to)
        if media_urls:
            raise InvalidRequest("SNS sends text SMS only: media_urls must be empty")
        validate_sms_body(body, max_chars=_MAX_BODY)
        size = len(body.encode("utf-8"))
        if size > _MAX_BODY:
            raise InvalidRequest(f"SMS body is {size} bytes in UTF-8; SNS takes {_MAX_BODY}")
        counted = count_segments(body)
        segments = sns_segments(body)
        cost = Money(self.price_per_segment.amount * segments, "USD")
        limit = await self._effective_limit(tenant_id)
        if self.check_opt_out and await self._is_opted_out(to, tenant_id):
            raise opted_out()
        spend = self._spend(tenant_id)
        published = False

        async def publish() -> str:
            nonlocal published
            month = await spend.reserve(cost, limit)
            try:
                reply = await self._aws(
                    "publish",
                    tenant_id,
                    PhoneNumber=to,
                    Message=body,
                    MessageAttributes=self._attributes,
                )
            except ConnectorError as exc:
                # An unknown outcome keeps its reservation: the message may have gone out.
                if outcome_known_unsent(exc):
                    await self._refund(spend, cost, month)
                raise
            published = True
            return str(reply["MessageId"])

        message_id = await self._call(
            "sns.Publish",
            publish,
            idempotent=self.retry_unknown,
            idempotency_key=idempotency_key,
            tenant_id=tenant_id,
            publish=True,
            fingerprint_data={"to": to, "body": body, "attributes": self._attributes},
            result_type=str,
        )
        return SmsResult(
            to=to,
            message_id=message_id,
            status="accepted",
            segments=segments,
            encoding=counted.encoding,
            replayed=not published,
        )

    # -- numbers and spend ------------------------------------------------------------------------

    async def validate_number(
        self,
        number: str,
        *,
        idempotency_key: IdempotencyKey | None = None,
        tenant_id: str | None = None,
    ) -> PhoneNumberInfo:
        """Check the E.164 shape, then ask SNS whether the number opted out of our SMS.

        SNS has no validity lookup: `valid` means well-formed E.164.
        """
        number = validate_e164(number)

        async def check() -> bool:
            reply = await self._aws(
                "check_if_phone_number_is_opted_out", tenant_id, phoneNumber=number
            )
            return bool(reply["isOptedOut"])

        opted_out = await self._call(
            "sns.CheckIfPhoneNumberIsOptedOut",
            check,
            idempotent=True,
            idempotency_key=idempotency_key,
            tenant_id=tenant_id,
            fingerprint_data=number,
            result_type=bool,
        )
        return PhoneNumberInfo(number=number, valid=True, opted_out=opted_out)

    async def spend(
        self,
        *,
        idempotency_key: IdempotencyKey | None = None,
        tenant_id: str | None = None,
    ) -> SpendReport:
        """Month-to-date spend (our estimate, shared by all workers) and the monthly limit.

        An account limit that cannot be read is reported as None (with a warning).
        """
        try:
            account = await self._read_account_limit(idempotency_key, tenant_id)
        except ConnectorError as exc:
            _log.warning(
                "nexus.sns.account_limit_unknown", service=self.service, error=type(exc).__name__
            )
            account = None
        spend = self._spend(tenant_id)
        month = spend.month()
        return SpendReport(
            month_to_date=await spend.month_to_date(month),
            limit=self.monthly_limit if self.monthly_limit is not None else account,
            account_limit=account,
            month=month,
        )

    async def _refund(self, spend: SpendTracker, cost: Money, month: str) -> None:
        """Give a reservation back; a backend that cannot take it is logged, never raised."""
        try:
            await spend.refund(cost, month)
        except ConnectorError as exc:
            # The send's own error matters more; the counter errs on the safe (high) side.
            _log.warning(
                "nexus.sns.spend_refund_failed", service=self.service, error=type(exc).__name__
            )

    async def _is_opted_out(self, number: str, tenant_id: str | None) -> bool:
        now = self._clock.monotonic()
        key = (self._account(tenant_id), number)  # opt-outs are per AWS account
        cached = self._opt_outs.get(key)
        if cached is not None and now - cached[0] < _OPT_OUT_TTL:
            return cached[1]
        try:
            opted_out = (await self.validate_number(number, tenant_id=tenant_id)).opted_out
        except ConnectorError as exc:
            # Cannot tell (no sns:CheckIfPhoneNumberIsOptedOut, throttled...): send anyway.
            _log.warning(
                "nexus.sns.opt_out_unknown", service=self.service, error=type(exc).__name__
            )
            return False
        return remember(self._opt_outs, key, (now, bool(opted_out)), _OPT_OUT_CACHE)[1]

    async def _effective_limit(self, tenant_id: str | None) -> Money | None:
        if self.monthly_limit is not None:
            return self.monthly_limit
        async with self._limit_lock:  # one read per refresh, not one per concurrent send
            cached = self._account_limits.get(self._account(tenant_id))
            if cached is not None and self._clock.monotonic() - cached[0] < self._limit_refresh:
                return cached[1]
            try:
                return await self._read_account_limit(None, tenant_id)
            except ConnectorError as exc:
                # A Publish-only role cannot read MonthlySpendLimit: the limit is unknown, which
                # must not stop every send (rule 39). Asked again after `limit_refresh`.
                _log.warning(
                    "nexus.sns.account_limit_unknown",
                    service=self.service,
                    error=type(exc).__name__,
                    code=getattr(exc, "code", None),
                )
                self._account_limits[self._account(tenant_id)] = (self._clock.monotonic(), None)
                return None

    async def _read_account_limit(
        self, idempotency_key: IdempotencyKey | None, tenant_id: str | None
    ) -> Money | None:
        async def read() -> str:
            reply = await self._aws(
                "get_sms_attributes", tenant_id, attributes=["MonthlySpendLimit"]
            )
            return str((reply.get("attributes") or {}).get("MonthlySpendLimit") or "")

        text = await self._call(
            "sns.GetSMSAttributes",
            read,
            idempotent=True,
            idempotency_key=idempotency_key,
            tenant_id=tenant_id,
            fingerprint_data="MonthlySpendLimit",
            result_type=str,
        )
        limit = parse_limit(text)
        self._account_limits[self._account(tenant_id)] = (self._clock.monotonic(), limit)
        return limit
