"""What every SMS adapter shares: the `SmsGateway` protocol, its values and bulk sending.

Sends are at most once by default: neither Twilio nor SNS de-duplicates a message, so a send
whose outcome is unknown (timeout after the request went out, 5xx) is reported, never re-sent,
unless the adapter was built with `retry_unknown=True`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence, Sized
from typing import Any, Literal, Protocol, runtime_checkable

import anyio
import msgspec

from .._errors import ConnectorError, InvalidRequest
from .._logging import get_logger
from .._models import IdempotencyKey, Response
from ._errors import VendorError
from ._money import Money

__all__ = [
    "PhoneNumberInfo",
    "PhoneNumberRejected",
    "SmsGateway",
    "SmsMessage",
    "SmsResult",
    "SmsStatus",
    "run_bulk",
]

#: Vendor statuses (Twilio: queued, accepted, scheduled...; SNS: "accepted") plus our own
#: "error" (certainly not sent) and "unknown" (may have been sent: timeout, 5xx).
SmsStatus = str

_log = get_logger()


class PhoneNumberRejected(VendorError):
    """The vendor refused the recipient number after we sent the request.

    Unlike `InvalidPhoneNumber` (our E.164 check, nothing sent), the number had the right shape
    but the vendor says it cannot take an SMS: Twilio 21211 (invalid) or 21614 (not a mobile
    number), SNS `InvalidParameter` on `PhoneNumber`. `reason` is "invalid" or "not_mobile".
    """

    def __init__(self, response: Response, *, reason: str = "invalid", **kw: Any) -> None:
        super().__init__(response, **kw)
        self.reason = reason


class SmsMessage(msgspec.Struct, frozen=True):
    """One message for `send_bulk`: recipient, text, optional MMS media and idempotency key."""

    to: str
    body: str
    media_urls: tuple[str, ...] = ()
    idempotency_key: str | None = None


class SmsResult(msgspec.Struct, frozen=True):
    """The outcome of one send.

    `message_id` is the vendor's id (Twilio `SM...`/`MM...`, SNS `MessageId`); `segments` is the
    vendor's count when it reports one, else ours; `price` is the cost when the vendor states it
    (Twilio only, usually not yet at creation). In `send_bulk` a failed message is a result
    whose `error` is set and whose `status` is "error" (not sent) or "unknown" (may have been).
    """

    to: str
    message_id: str | None
    status: SmsStatus
    segments: int
    price: Money | None = None
    encoding: Literal["GSM-7", "UCS-2"] | None = None
    replayed: bool = False
    error: ConnectorError | None = None

    @property
    def ok(self) -> bool:
        """True when the vendor accepted the message."""
        return self.error is None

    @classmethod
    def failed(cls, to: str, error: ConnectorError) -> SmsResult:
        """A result for a message that raised `error`."""
        unknown = error.transient and getattr(error, "sent", True)
        return cls(to, None, "unknown" if unknown else "error", 0, error=error)


class PhoneNumberInfo(msgspec.Struct, frozen=True):
    """What a vendor knows about a number (fields it does not report are None).

    Twilio Lookup v2 fills validity, country, carrier and line type (`mobile`, `landline`,
    `fixedVoip`, `nonFixedVoip`, `tollFree`... camelCase as Twilio sends them); SNS reports
    only whether the number opted out of SMS from this account.
    """

    number: str
    valid: bool
    country_code: str | None = None
    calling_country_code: str | None = None
    national_format: str | None = None
    carrier_name: str | None = None
    line_type: str | None = None
    mobile_country_code: str | None = None
    mobile_network_code: str | None = None
    validation_errors: tuple[str, ...] = ()
    opted_out: bool | None = None


@runtime_checkable
class SmsGateway(Protocol):
    """An SMS vendor: `TwilioSmsAdapter` and `SnsSmsAdapter` both satisfy it."""

    async def send(
        self,
        to: str,
        body: str,
        *,
        media_urls: Sequence[str] = (),
        idempotency_key: IdempotencyKey | None = None,
        tenant_id: str | None = None,
    ) -> SmsResult:
        """Send one message to an E.164 number; raises a typed `ConnectorError` on failure."""
        ...

    async def send_bulk(
        self,
        messages: Iterable[tuple[str, str] | SmsMessage],
        *,
        concurrency: int = 10,
        idempotency_key: IdempotencyKey | None = None,
        tenant_id: str | None = None,
    ) -> list[SmsResult]:
        """Send many messages, at most `concurrency` at a time; one result each, in order."""
        ...

    async def validate_number(
        self,
        number: str,
        *,
        idempotency_key: IdempotencyKey | None = None,
        tenant_id: str | None = None,
    ) -> PhoneNumberInfo:
        """Check an E.164 number with the vendor."""
        ...


#: An adapter's `send(to, body, *, media_urls, idempotency_key, tenant_id)`.
Send = Callable[..., Awaitable[SmsResult]]


def _as_message(item: object) -> SmsMessage:
    if isinstance(item, SmsMessage):
        return item
    if isinstance(item, tuple) and len(item) == 2:
        to, body = item
        return SmsMessage(to, body)
    raise InvalidRequest(
        f"send_bulk takes (to, body) pairs or SmsMessage values, not {type(item).__name__}"
    )


def _message_key(
    message: SmsMessage, batch: IdempotencyKey | None, index: int
) -> IdempotencyKey | None:
    """The message's own key, else the batch key with the message's position appended."""
    if message.idempotency_key is not None:
        return IdempotencyKey(message.idempotency_key, batch.ttl if batch else 86400.0)
    if batch is not None:
        return IdempotencyKey(f"{batch.value}#{index}", batch.ttl)
    return None


async def run_bulk(
    messages: Iterable[tuple[str, str] | SmsMessage],
    send: Send,
    *,
    concurrency: int,
    idempotency_key: IdempotencyKey | None,
    tenant_id: str | None,
    service: str,
) -> list[SmsResult]:
    """Send `messages` through the adapter's `send` with a fixed pool of `concurrency` workers.

    Workers pull from one iterator, so the input is consumed lazily (100k messages never become
    100k tasks); each result lands at its input position. A `ConnectorError` becomes a failed
    result; anything else is a bug and propagates.
    """
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise InvalidRequest(f"concurrency must be an integer >= 1, got {concurrency!r}")
    if idempotency_key is not None and not isinstance(idempotency_key, IdempotencyKey):
        raise InvalidRequest("idempotency_key must be an IdempotencyKey")
    workers = min(concurrency, len(messages)) if isinstance(messages, Sized) else concurrency
    source = iter(messages)
    results: list[SmsResult | None] = []

    def take() -> tuple[int, object] | None:
        # No await between next() and append(): positions stay consistent across workers.
        for item in source:
            results.append(None)
            return len(results) - 1, item
        return None

    async def worker() -> None:
        while (job := take()) is not None:
            index, item = job
            try:
                message = _as_message(item)
            except InvalidRequest as exc:
                results[index] = SmsResult.failed("", exc)
                continue
            try:
                key = _message_key(message, idempotency_key, index)
                results[index] = await send(
                    message.to,
                    message.body,
                    media_urls=message.media_urls,
                    idempotency_key=key,
                    tenant_id=tenant_id,
                )
            except ConnectorError as exc:
                to = message.to if isinstance(message.to, str) else ""
                results[index] = SmsResult.failed(to, exc)

    try:
        async with anyio.create_task_group() as group:
            for _ in range(workers):
                group.start_soon(worker)
    except BaseExceptionGroup as group_error:
        if len(group_error.exceptions) == 1:
            raise group_error.exceptions[0] from None
        raise
    done: list[SmsResult] = [r for r in results if r is not None]
    assert len(done) == len(results)
    failed = sum(1 for r in done if r.error is not None)
    _log.info("nexus.sms.bulk_completed", service=service, messages=len(done), failed=failed)
    return done
