"""What every SMS adapter shares: the `SmsGateway` protocol, its values and bulk sending.

Sends are at most once by default: neither Twilio nor SNS de-duplicates a message, so a send
whose outcome is unknown (timeout after the request went out, 5xx) is reported, never re-sent,
unless the adapter was built with `retry_unknown=True`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence, Sized
from typing import Literal, Protocol, Unpack, runtime_checkable

import anyio
import msgspec

from .._errors import (
    BackendUnavailable,
    CircuitOpenError,
    ConnectorError,
    CredentialRefreshError,
    HttpStatusError,
    IdempotencyConflict,
    IdempotencyInProgress,
    InvalidRequest,
    RateLimitExceeded,
)
from .._logging import get_logger
from .._models import IdempotencyKey, Response
from ._errors import SpendLimitExceeded, VendorError, VendorFields
from ._money import Money

__all__ = [
    "BulkSendInterrupted",
    "BulkSender",
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

    def __init__(
        self, response: Response, *, reason: str = "invalid", **fields: Unpack[VendorFields]
    ) -> None:
        super().__init__(response, **fields)
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
    `sent` is False only when the message certainly did not reach the vendor (refused by our
    checks, by admission: rate limit, open circuit, `BackendUnavailable`, spend guard; or a
    claim failure on its idempotency key), so resending it cannot make a duplicate.
    """

    to: str
    message_id: str | None
    status: SmsStatus
    segments: int
    price: Money | None = None
    encoding: Literal["GSM-7", "UCS-2"] | None = None
    replayed: bool = False
    error: ConnectorError | None = None
    sent: bool = True

    @property
    def ok(self) -> bool:
        """True when the vendor accepted the message."""
        return self.error is None

    @classmethod
    def failed(cls, to: str, error: ConnectorError) -> SmsResult:
        """A result for a message that raised `error`."""
        sent = may_have_been_sent(error)
        return cls(to, None, "unknown" if sent else "error", 0, error=error, sent=sent)


#: Errors raised before the request left: input checks, admission and key claims.
_NEVER_SENT: tuple[type[ConnectorError], ...] = (
    InvalidRequest,
    RateLimitExceeded,
    CircuitOpenError,
    BackendUnavailable,
    IdempotencyConflict,
    IdempotencyInProgress,
    CredentialRefreshError,
    SpendLimitExceeded,
)


def may_have_been_sent(error: ConnectorError) -> bool:
    """False when `error` proves the message never reached the vendor, else True."""
    sent = getattr(error, "sent", None)
    if isinstance(sent, bool):
        return sent  # RequestTimeout/ConnectionFailed know; adapters may set it too
    if isinstance(error, _NEVER_SENT):
        return False
    if isinstance(error, HttpStatusError):
        # The vendor answered: a 4xx refused the message (nothing sent); a 5xx may hide a send.
        return error.response.status >= 500
    return True  # anything else (an unreadable answer...) may hide a send


class BulkSendInterrupted(ConnectorError):
    """`send_bulk` stopped taking input; nothing that was started is lost.

    Raised when the input iterator raised, when an item was malformed (not a `(to, body)` pair
    or an `SmsMessage` with str fields and a tuple of str `media_urls`: an `InvalidRequest`),
    or when one send hit a bug. `results` holds one result for every message taken before the
    failure, in input order (each in-flight send was allowed to finish); `position` is the
    index of the input item that could not be produced or used (or, for a bug inside one send,
    of that message). The exception is the `__cause__`. Re-running the same batch key replays
    the messages already sent instead of sending them again.
    """

    def __init__(self, message: str, *, results: list[SmsResult], position: int) -> None:
        super().__init__(message)
        self.results = results
        self.position = position


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
        message = item
    elif isinstance(item, tuple) and len(item) == 2:
        to, body = item
        message = SmsMessage(to, body)
    else:
        raise InvalidRequest(
            f"send_bulk takes (to, body) pairs or SmsMessage values, not {type(item).__name__}"
        )
    # msgspec does not check field types on construction: check them here, so one malformed
    # item stops the batch cleanly (rule 38) instead of a TypeError inside a send.
    if not isinstance(message.to, str):
        raise InvalidRequest(f"message 'to' must be a str, not {type(message.to).__name__}")
    if not isinstance(message.body, str):
        raise InvalidRequest(f"message body must be a str, not {type(message.body).__name__}")
    media = message.media_urls
    if not isinstance(media, tuple | list) or not all(isinstance(u, str) for u in media):
        raise InvalidRequest("media_urls must be a tuple of str")
    key = message.idempotency_key
    if key is not None and not isinstance(key, str):
        raise InvalidRequest("a message's idempotency_key must be a str")
    return message


_MAX_KEY: int = 255


def _message_key(
    message: SmsMessage, batch: IdempotencyKey | None, index: int
) -> IdempotencyKey | None:
    """The message's own key, else the batch key with the message's position appended.

    When `batch#index` would pass the 255-character key limit, the batch part is replaced by
    a SHA-256 of it: still one stable key per (batch, position), and still valid.
    """
    if message.idempotency_key is not None:
        return IdempotencyKey(message.idempotency_key, batch.ttl if batch else 86400.0)
    if batch is not None:
        derived = f"{batch.value}#{index}"
        if len(derived) > _MAX_KEY:
            digest = hashlib.sha256(batch.value.encode()).hexdigest()
            derived = f"{batch.value[:120]}~{digest}#{index}"
        return IdempotencyKey(derived, batch.ttl)
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
    100k tasks); each result lands at its input position. A `ConnectorError` from a send
    becomes a failed result. When the input itself raises or yields a malformed item, no new
    item is taken, the sends in flight finish, and `BulkSendInterrupted` carries every result
    so far (rule 38): nothing after the bad item is sent. An unexpected exception from a send
    (a bug) is handled the same way, the message being reported as possibly sent. In-flight
    sends are never cancelled by another message's failure.
    """
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise InvalidRequest(f"concurrency must be an integer >= 1, got {concurrency!r}")
    if idempotency_key is not None and not isinstance(idempotency_key, IdempotencyKey):
        raise InvalidRequest("idempotency_key must be an IdempotencyKey")
    given: object = messages  # callers may pass anything (None, a str) despite the types
    if isinstance(given, str | bytes) or not isinstance(given, Iterable):
        raise InvalidRequest(
            f"messages must be an iterable of (to, body) pairs, not {type(given).__name__}"
        )
    workers = min(concurrency, len(messages)) if isinstance(messages, Sized) else concurrency
    source: Iterator[object] = iter(messages)
    results: list[SmsResult | None] = []
    failure: list[tuple[int, BaseException]] = []

    def take() -> tuple[int, SmsMessage] | None:
        # No await between next() and append(): positions stay consistent across workers, and
        # a bad item is seen before any later one is taken.
        if failure:
            return None
        try:
            message = _as_message(next(source))
        except StopIteration:
            return None
        except Exception as exc:  # the input failed or is malformed: stop taking, keep results
            failure.append((len(results), exc))
            return None
        results.append(None)
        return len(results) - 1, message

    async def worker() -> None:
        while (job := take()) is not None:
            index, message = job
            try:
                key = _message_key(message, idempotency_key, index)
                results[index] = await send(
                    message.to,
                    message.body,
                    media_urls=tuple(message.media_urls),
                    idempotency_key=key,
                    tenant_id=tenant_id,
                )
            except ConnectorError as exc:
                results[index] = SmsResult.failed(message.to, exc)
            except Exception as exc:  # a bug: report it, but never lose the other results
                error = ConnectorError(f"unexpected {type(exc).__name__} while sending")
                error.__cause__ = exc
                results[index] = SmsResult(message.to, None, "unknown", 0, error=error, sent=True)
                failure.append((index, exc))

    async with anyio.create_task_group() as group:
        for _ in range(workers):
            group.start_soon(worker)
    done: list[SmsResult] = [r for r in results if r is not None]
    assert len(done) == len(results)
    failed = sum(1 for r in done if r.error is not None)
    if failure:
        position, cause = min(failure, key=lambda f: f[0])
        _log.warning(
            "nexus.sms.bulk_interrupted",
            service=service,
            messages=len(done),
            failed=failed,
            position=position,
            error=type(cause).__name__,
        )
        # Our own check's text names the bad field, never a value; a caller's exception is
        # only named (its text may hold anything).
        why = type(cause).__name__
        if isinstance(cause, InvalidRequest):
            why = f"{why}: {cause}"
        raise BulkSendInterrupted(
            f"send_bulk stopped at input item {position} ({why}); {len(done)} results kept",
            results=done,
            position=position,
        ) from cause
    _log.info("nexus.sms.bulk_completed", service=service, messages=len(done), failed=failed)
    return done


class BulkSender:
    """`send_bulk` for an SMS adapter with `send` and `service`: one pool over `run_bulk`."""

    service: str
    send: Send

    async def send_bulk(
        self,
        messages: Iterable[tuple[str, str] | SmsMessage],
        *,
        concurrency: int = 10,
        idempotency_key: IdempotencyKey | None = None,
        tenant_id: str | None = None,
    ) -> list[SmsResult]:
        """Send many messages, at most `concurrency` at once; one `SmsResult` each, in order.

        `concurrency` bounds this call's pool (an adapter's `concurrency_limit` bounds the
        sends in flight across workers). A failed message is a result with `error` set (a
        `ConcurrencyLimitExceeded` too, when no slot came free). An input that raises or a
        malformed item stops intake: the sends in flight finish and `BulkSendInterrupted`
        carries every result so far. With `idempotency_key`, message i uses the key
        `f"{key}#{i}"` (unless it has its own), so re-running the same batch replays what was
        already sent instead of sending it again.
        """
        return await run_bulk(
            messages,
            self.send,
            concurrency=concurrency,
            idempotency_key=idempotency_key,
            tenant_id=tenant_id,
            service=self.service,
        )
