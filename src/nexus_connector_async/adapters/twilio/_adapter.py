"""`TwilioSmsAdapter`: Programmable Messaging, Balance and Lookup v2 through the pipeline.

Twilio has no idempotency key for Messages create, so a send is made at most once: only
429/20429 ("not processed") and connection failures before sending are retried, unless the
adapter is built with `retry_unknown=True`.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from typing import Final, TypeVar
from urllib.parse import urlsplit

import msgspec

from ..._config import (
    CircuitBreakerConfig,
    ConcurrencyLimit,
    Endpoint,
    RateLimitConfig,
    RetryPolicy,
    Timeouts,
)
from ..._connector import Connector
from ..._errors import InvalidRequest
from ..._models import IdempotencyKey, Response
from ..._scrub import Scrubber, check_vendor_url
from .._errors import VendorError
from .._money import Money
from .._payments import account_scope, scoped_key
from .._phone import count_segments, validate_e164, validate_sms_body
from .._sms import PhoneNumberInfo, SmsMessage, SmsResult, run_bulk
from ._errors import TWILIO, TwilioError, error_from_response
from ._models import decode_balance, decode_lookup, decode_message

__all__ = ["TwilioSmsAdapter"]

_T = TypeVar("_T")

_ACCOUNT_SID: Final = re.compile(r"AC[0-9a-fA-F]{32}")
_API_KEY_SID: Final = re.compile(r"SK[0-9a-fA-F]{32}")
_SERVICE_SID: Final = re.compile(r"MG[0-9a-fA-F]{32}")
_MAX_MEDIA: Final = 10
_MAX_BODY_CHARS: Final = 1600
# Twilio's documented "not processed" answer: resending cannot duplicate a message.
_NOT_PROCESSED: Final = frozenset({429})
_DEFAULT_RETRY: Final = RetryPolicy(max_attempts=3, base_delay=0.25, max_delay=10.0)


class _Secret:
    """Holds the Authorization header value; never shows it in `repr` or `str`."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "<secret>"

    __str__ = __repr__


def _root_url(name: str, url: str) -> str:
    # The auth token must not cross a network in clear: http:// only for local simulators.
    if not isinstance(url, str) or not check_vendor_url(url):
        raise InvalidRequest(f"{name} must be an https URL (http:// only for a loopback host)")
    return url.rstrip("/")


def _check_url(what: str, url: object) -> str:
    if not isinstance(url, str) or any(c in url for c in "\r\n\0 "):
        raise InvalidRequest(f"{what} must be a str without spaces or control characters")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequest(f"{what} must be an absolute http(s) URL")
    return url


def _check_status_callback(url: object) -> str:
    checked = _check_url("status_callback", url)
    if "_" in (urlsplit(checked).hostname or ""):
        # Twilio refuses callback hostnames with underscores (vendor-facts 3.2).
        raise InvalidRequest("status_callback hostname must not contain underscores")
    return checked


def _check_sender(from_number: object) -> str:
    # E.164, a short code or an alphanumeric sender ID: Twilio checks ownership; we check shape.
    if (
        not isinstance(from_number, str)
        or not from_number
        or len(from_number) > 64
        or not from_number.isprintable()
    ):
        raise InvalidRequest("from_number must be a non-empty printable str")
    return from_number


class TwilioSmsAdapter:
    """SMS and MMS through Twilio, with Lookup v2 number checks and the account balance.

    Auth is HTTP Basic: the account SID and auth token, or an API key SID (`SK...`) with its
    secret as `auth_token` (the `AC...` account SID still names the account in the path). Give
    `from_number`, `messaging_service_sid`, or both. `rate_limit`, `circuit_breaker`, `retry` and
    `timeout` tune the Messages endpoint; Lookup calls use the service `lookups_service`.
    `concurrency_limit` caps the account's REST requests in flight across every worker sharing
    the connector's backend (Twilio answers 20429 beyond its account concurrency limit).
    """

    def __init__(
        self,
        connector: Connector,
        account_sid: str,
        auth_token: str,
        from_number: str | None = None,
        *,
        messaging_service_sid: str | None = None,
        api_key_sid: str | None = None,
        base_url: str = "https://api.twilio.com",
        lookups_base_url: str = "https://lookups.twilio.com",
        service: str = "twilio",
        lookups_service: str | None = None,
        status_callback: str | None = None,
        rate_limit: RateLimitConfig | None = None,
        circuit_breaker: CircuitBreakerConfig | None = None,
        retry: RetryPolicy | None = None,
        timeout: Timeouts | None = None,
        retry_unknown: bool = False,
        concurrency_limit: ConcurrencyLimit | None = None,
    ) -> None:
        if not isinstance(account_sid, str) or not _ACCOUNT_SID.fullmatch(account_sid):
            raise InvalidRequest("account_sid must be 'AC' followed by 32 hex digits")
        if api_key_sid is not None and not (
            isinstance(api_key_sid, str) and _API_KEY_SID.fullmatch(api_key_sid)
        ):
            raise InvalidRequest("api_key_sid must be 'SK' followed by 32 hex digits")
        if not isinstance(auth_token, str) or not auth_token or not auth_token.isprintable():
            raise InvalidRequest("auth_token must be a non-empty printable str")
        if messaging_service_sid is not None and not (
            isinstance(messaging_service_sid, str) and _SERVICE_SID.fullmatch(messaging_service_sid)
        ):
            raise InvalidRequest("messaging_service_sid must be 'MG' followed by 32 hex digits")
        if from_number is None and messaging_service_sid is None:
            raise InvalidRequest("give from_number or messaging_service_sid (or both)")
        self._connector = connector
        self.account_sid = account_sid
        self.from_number = None if from_number is None else _check_sender(from_number)
        self.messaging_service_sid = messaging_service_sid
        self.service = service
        self.lookups_service = lookups_service or f"{service}-lookups"
        self.status_callback = (
            None if status_callback is None else _check_status_callback(status_callback)
        )
        self.retry_unknown = bool(retry_unknown)
        user = api_key_sid or account_sid
        token = base64.b64encode(f"{user}:{auth_token}".encode()).decode("ascii")
        self._auth = _Secret(f"Basic {token}")
        self._scrub = Scrubber((auth_token, token))
        # Idempotency is scoped by account (api.md 28): two accounts never share a record.
        self._account = account_scope("twilio", account_sid, api_key_sid, auth_token)
        api = _root_url("base_url", base_url)
        self._lookups_root = _root_url("lookups_base_url", lookups_base_url) + "/v2/PhoneNumbers/"
        policy = retry or _DEFAULT_RETRY
        policy = msgspec.structs.replace(
            policy, always_safe_statuses=policy.always_safe_statuses | _NOT_PROCESSED
        )
        self._timeout = timeout or Timeouts(total=15.0, connect=5.0)
        self._breaker = circuit_breaker or CircuitBreakerConfig()
        self._retry = policy
        account = f"{api}/2010-04-01/Accounts/{account_sid}"
        self._messages = Endpoint(
            f"{account}/Messages.json",
            "POST",
            body="form",
            timeout=self._timeout,
            rate_limit=rate_limit,
            circuit_breaker=self._breaker,
            retry=policy,
            concurrency_limit=concurrency_limit,
        )
        self._balance = Endpoint(
            f"{account}/Balance.json",
            "GET",
            timeout=self._timeout,
            circuit_breaker=self._breaker,
            retry=policy,
            concurrency_limit=concurrency_limit,  # the same account's REST API
        )

    def __repr__(self) -> str:
        sender = self.from_number or self.messaging_service_sid
        return (
            f"TwilioSmsAdapter(account_sid={self.account_sid!r}, sender={sender!r},"
            f" service={self.service!r})"
        )

    @property
    def _headers(self) -> dict[str, str]:
        # Per call, not on the Endpoint: an Endpoint's repr shows its headers.
        return {"Authorization": self._auth.reveal()}

    # -- messaging ----------------------------------------------------------------------------

    async def send(
        self,
        to: str,
        body: str,
        *,
        media_urls: Sequence[str] = (),
        status_callback: str | None = None,
        idempotency_key: IdempotencyKey | None = None,
        tenant_id: str | None = None,
    ) -> SmsResult:
        """Send one SMS (or MMS with up to 10 `media_urls`) to an E.164 number.

        Raises `InvalidPhoneNumber`/`InvalidRequest` before sending, or after: `OptedOut`
        (21610), `PhoneNumberRejected` (21211, 21614), `RegionNotPermitted` (21408),
        `AuthenticationFailed` (20003), `VendorRateLimited` (429/20429 once retries ran out),
        `TwilioError` for any other code, `RequestTimeout`/`ConnectionFailed`.
        """
        to = validate_e164(to)
        media = self._check_media(media_urls)
        if body or not media:
            validate_sms_body(body, max_chars=_MAX_BODY_CHARS)
        callback = self.status_callback
        if status_callback is not None:
            callback = _check_status_callback(status_callback)
        counted = count_segments(body)
        form: list[tuple[str, str]] = [("To", to)]
        if self.from_number is not None:
            form.append(("From", self.from_number))
        if self.messaging_service_sid is not None:
            form.append(("MessagingServiceSid", self.messaging_service_sid))
        if body:
            form.append(("Body", body))
        # One plain `MediaUrl` per URL: Twilio wants the key repeated, never `MediaUrl[0]`.
        form.extend(("MediaUrl", url) for url in media)
        if callback is not None:
            form.append(("StatusCallback", callback))
        response = await self._connector.execute(
            self.service,
            self._messages,
            form,
            idempotency_key=scoped_key(idempotency_key, self._account, tenant_id),
            tenant_id=tenant_id,
            raise_for_status=False,
            headers=self._headers,
            idempotent=self.retry_unknown,
        )
        if not response.ok:
            raise error_from_response(response, self._scrub)
        message = _decode(response, decode_message)
        vendor_segments = _int_or_none(message.num_segments)
        return SmsResult(
            to=message.to or to,
            message_id=message.sid,
            status=message.status,
            segments=vendor_segments or counted.segments,
            price=_price(message.price, message.price_unit),
            encoding=counted.encoding if body else None,
            replayed=response.replayed,
        )

    async def send_bulk(
        self,
        messages: Iterable[tuple[str, str] | SmsMessage],
        *,
        concurrency: int = 10,
        idempotency_key: IdempotencyKey | None = None,
        tenant_id: str | None = None,
    ) -> list[SmsResult]:
        """Send many messages, at most `concurrency` at once; one `SmsResult` each, in order.

        A failed message is a result with `error` set, never an exception. With
        `idempotency_key`, message i uses the key `f"{key}#{i}"` (unless it has its own), so
        re-running the same batch replays what was already sent instead of sending it again.
        """

        return await run_bulk(
            messages,
            self.send,
            concurrency=concurrency,
            idempotency_key=idempotency_key,
            tenant_id=tenant_id,
            service=self.service,
        )

    # -- account and lookup ---------------------------------------------------------------------

    async def validate_number(
        self,
        number: str,
        *,
        idempotency_key: IdempotencyKey | None = None,
        tenant_id: str | None = None,
    ) -> PhoneNumberInfo:
        """Look `number` up with Lookup v2 `line_type_intelligence` (a paid Lookup package).

        `valid` is Twilio's verdict; a number that is not E.164 is refused before any request.
        """
        number = validate_e164(number)
        # `+` stays literal in the path: legal there, and never turned into a space.
        endpoint = Endpoint(
            self._lookups_root + number,
            "GET",
            timeout=self._timeout,
            circuit_breaker=self._breaker,
            retry=self._retry,
        )
        response = await self._connector.execute(
            self.lookups_service,
            endpoint,
            {"Fields": "line_type_intelligence"},
            idempotency_key=scoped_key(idempotency_key, self._account, tenant_id),
            tenant_id=tenant_id,
            raise_for_status=False,
            headers=self._headers,
        )
        if not response.ok:
            raise error_from_response(response, self._scrub)
        found = _decode(response, decode_lookup)
        line = found.line_type_intelligence
        return PhoneNumberInfo(
            number=found.phone_number or number,
            valid=found.valid,
            country_code=found.country_code,
            calling_country_code=found.calling_country_code,
            national_format=found.national_format,
            carrier_name=line.carrier_name if line else None,
            line_type=line.type if line else None,
            mobile_country_code=line.mobile_country_code if line else None,
            mobile_network_code=line.mobile_network_code if line else None,
            validation_errors=tuple(found.validation_errors or ()),
        )

    async def balance(
        self,
        *,
        idempotency_key: IdempotencyKey | None = None,
        tenant_id: str | None = None,
    ) -> Money:
        """The account balance (it can lag behind real spend; subaccounts have none)."""
        response = await self._connector.execute(
            self.service,
            self._balance,
            idempotency_key=scoped_key(idempotency_key, self._account, tenant_id),
            tenant_id=tenant_id,
            raise_for_status=False,
            headers=self._headers,
        )
        if not response.ok:
            raise error_from_response(response, self._scrub)
        found = _decode(response, decode_balance)
        if found.balance is None or found.currency is None:
            raise TwilioError(
                response, vendor=TWILIO, message="no balance information (a subaccount?)"
            )
        try:
            # Read leniently (api.md rule 34): any 3-letter account currency.
            return Money.from_vendor(found.balance, found.currency)
        except InvalidRequest:
            raise TwilioError(response, vendor=TWILIO, message="unreadable balance") from None

    # -- helpers ------------------------------------------------------------------------------

    @staticmethod
    def _check_media(media_urls: Sequence[str]) -> list[str]:
        if isinstance(media_urls, str):
            raise InvalidRequest("media_urls must be a sequence of URLs, not one str")
        if not isinstance(media_urls, Sequence):
            raise InvalidRequest("media_urls must be a sequence of URLs (a tuple or list)")
        media = [_check_url("media URL", url) for url in media_urls]
        if len(media) > _MAX_MEDIA:
            raise InvalidRequest(f"Twilio takes at most {_MAX_MEDIA} media URLs, got {len(media)}")
        return media


def _decode(response: Response, decode: Callable[[bytes], _T]) -> _T:
    try:
        return decode(response.body)
    except (msgspec.DecodeError, UnicodeDecodeError):
        raise VendorError(
            response, vendor=TWILIO, message="response body is not the expected JSON"
        ) from None


def _int_or_none(text: str | None) -> int | None:
    return int(text) if text is not None and text.isdigit() else None


def _price(price: str | None, unit: str | None) -> Money | None:
    """Twilio's price is a negative string (a charge); we report the cost as positive Money."""
    if not price or not unit:
        return None
    try:
        return Money.from_vendor(-Decimal(price), unit)
    except (InvalidRequest, ArithmeticError, ValueError):
        return None
