"""`TwilioSmsAdapter`: Programmable Messaging, Balance and Lookup v2 through the pipeline.

Twilio has no idempotency key for Messages create, so a send is made at most once: only
429/20429 ("not processed") and connection failures before sending are retried, unless the
adapter is built with `retry_unknown=True`.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import re
from collections import OrderedDict
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Final, Protocol, TypeVar, runtime_checkable
from urllib.parse import urlsplit

import msgspec

from ..._config import (
    CircuitBreakerConfig,
    ConcurrencyLimit,
    RateLimitConfig,
    RetryPolicy,
    Timeouts,
)
from ..._connector import Connector
from ..._errors import ConnectorError, CredentialRefreshError, InvalidRequest
from ..._models import IdempotencyKey, Response
from ..._scrub import Scrubber
from .._errors import VendorError
from .._money import Money
from .._payments import account_scope, scoped_key
from .._phone import count_segments, validate_e164, validate_sms_body
from .._sms import BulkSender, PhoneNumberInfo, SmsResult
from .._vendor import FixedCredentials, Policies, Route, VendorClient, check_base_url
from ._errors import TWILIO, TwilioError, error_from_response
from ._models import decode_balance, decode_lookup, decode_message

__all__ = ["TwilioAccount", "TwilioAccountProvider", "TwilioSmsAdapter"]

_T = TypeVar("_T")

_ACCOUNT_SID: Final = re.compile(r"AC[0-9a-fA-F]{32}")
_API_KEY_SID: Final = re.compile(r"SK[0-9a-fA-F]{32}")
_SERVICE_SID: Final = re.compile(r"MG[0-9a-fA-F]{32}")
_MAX_MEDIA: Final = 10
_MAX_BODY_CHARS: Final = 1600
# Twilio's documented "not processed" answer: resending cannot duplicate a message.
_NOT_PROCESSED: Final = frozenset({429})
_DEFAULT_RETRY: Final = RetryPolicy(max_attempts=3, base_delay=0.25, max_delay=10.0)
#: How many tenants' accounts the adapter keeps derived state for (URLs, header, scrubber).
_ACCOUNT_CACHE: Final = 1024


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


def _check_service_sid(sid: object) -> str | None:
    if sid is not None and not (isinstance(sid, str) and _SERVICE_SID.fullmatch(sid)):
        raise InvalidRequest("messaging_service_sid must be 'MG' followed by 32 hex digits")
    return sid


@dataclasses.dataclass(frozen=True, slots=True)
class TwilioAccount:
    """One Twilio account (or subaccount) and its credentials, for `TwilioSmsAdapter`.

    `account_sid` (`AC...`) names the account in every URL path. Auth is HTTP Basic with that
    SID and `auth_token`, or with `api_key_sid` (`SK...`) and the key's secret as `auth_token`.
    `from_number` / `messaging_service_sid`, when either is set, replace the adapter's sender:
    a subaccount sends only from numbers and Messaging Services it owns. The token never
    appears in `repr`.
    """

    account_sid: str
    auth_token: str = dataclasses.field(repr=False)
    api_key_sid: str | None = None
    from_number: str | None = None
    messaging_service_sid: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.account_sid, str) or not _ACCOUNT_SID.fullmatch(self.account_sid):
            raise InvalidRequest("account_sid must be 'AC' followed by 32 hex digits")
        key = self.api_key_sid
        if key is not None and not (isinstance(key, str) and _API_KEY_SID.fullmatch(key)):
            raise InvalidRequest("api_key_sid must be 'SK' followed by 32 hex digits")
        token = self.auth_token
        if not isinstance(token, str) or not token or not token.isprintable():
            raise InvalidRequest("auth_token must be a non-empty printable str")
        if self.from_number is not None:
            _check_sender(self.from_number)
        _check_service_sid(self.messaging_service_sid)


@runtime_checkable
class TwilioAccountProvider(Protocol):
    """Names the Twilio account each (service, tenant) sends from: `credentials=` of the adapter.

    Asked before every call, so rotated tokens take effect at once; keep it fast (a dict, a
    cache). An exception other than a `ConnectorError` becomes `CredentialRefreshError`
    (nothing was sent).
    """

    async def get_account(self, service: str, tenant_id: str | None = None) -> TwilioAccount:
        """The account (SID, Basic secret, optional sender) for (service, tenant)."""
        ...


class _Account:
    """What the adapter derives from one account, built once: routes, auth, scrubber, scope."""

    __slots__ = (
        "auth",
        "balance",
        "errors",
        "from_number",
        "messages",
        "messaging_service_sid",
        "scope",
        "scrub",
        "sid",
    )

    def __init__(self, account: TwilioAccount, messages: Route, balance: Route) -> None:
        self.sid = account.account_sid
        user = account.api_key_sid or account.account_sid
        token = base64.b64encode(f"{user}:{account.auth_token}".encode()).decode("ascii")
        # HTTP Basic as the pipeline attaches every vendor's auth: a credential provider.
        self.auth = FixedCredentials(token, "Basic")
        self.scrub = Scrubber((account.auth_token, token))
        self.errors = functools.partial(error_from_response, scrub=self.scrub)
        # Idempotency is scoped by account (api.md 28): two accounts (two subaccounts of one
        # parent too) never share a record, even for the same tenant and key.
        self.scope = account_scope(
            "twilio", account.account_sid, account.api_key_sid, account.auth_token
        )
        self.from_number = account.from_number
        self.messaging_service_sid = account.messaging_service_sid
        self.messages = messages
        self.balance = balance

    def __repr__(self) -> str:
        return f"_Account(sid={self.sid!r})"


class TwilioSmsAdapter(BulkSender):
    """SMS and MMS through Twilio, with Lookup v2 number checks and the account balance.

    Auth is HTTP Basic: the account SID and auth token, or an API key SID (`SK...`) with its
    secret as `auth_token` (the `AC...` account SID still names the account in the path).
    Instead of one account, `credentials` (a `TwilioAccountProvider`) is asked for each call's
    (service, tenant) `TwilioAccount`, so each tenant sends from its own (sub)account: its SID
    in the path, its secret in the header, its records apart (api.md rules 28, 37). Give
    `from_number`, `messaging_service_sid`, or both (here or per account). `rate_limit`,
    `circuit_breaker`, `retry` and `timeout` tune the Messages endpoint; Lookup calls use the
    service `lookups_service`. `concurrency_limit` caps the account's REST requests in flight
    across every worker sharing the connector's backend (Twilio answers 20429 beyond its
    account concurrency limit); with per-tenant accounts give it `scope="tenant"`.
    """

    def __init__(
        self,
        connector: Connector,
        account_sid: str | None = None,
        auth_token: str | None = None,
        from_number: str | None = None,
        *,
        messaging_service_sid: str | None = None,
        api_key_sid: str | None = None,
        credentials: TwilioAccountProvider | None = None,
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
        fixed: TwilioAccount | None = None
        if credentials is None:
            # The adapter's own account: checked here, before anything is sent.
            fixed = TwilioAccount(account_sid, auth_token, api_key_sid)  # type: ignore[arg-type]
            if from_number is None and messaging_service_sid is None:
                raise InvalidRequest("give from_number or messaging_service_sid (or both)")
        elif not isinstance(credentials, TwilioAccountProvider):
            raise InvalidRequest("credentials must be a TwilioAccountProvider (get_account)")
        elif (account_sid, auth_token, api_key_sid) != (None, None, None):
            raise InvalidRequest(
                "give TwilioSmsAdapter an account_sid and auth_token or a credentials provider"
            )
        self.account_sid = account_sid
        self.from_number = None if from_number is None else _check_sender(from_number)
        self.messaging_service_sid = _check_service_sid(messaging_service_sid)
        self.service = service
        self.lookups_service = lookups_service or f"{service}-lookups"
        self.status_callback = (
            None if status_callback is None else _check_status_callback(status_callback)
        )
        self.retry_unknown = bool(retry_unknown)
        policy = retry or _DEFAULT_RETRY
        policy = msgspec.structs.replace(
            policy, always_safe_statuses=policy.always_safe_statuses | _NOT_PROCESSED
        )
        self._vendor = VendorClient(
            connector,
            service,
            Policies(
                timeout or Timeouts(total=15.0, connect=5.0),
                policy,
                circuit_breaker or CircuitBreakerConfig(),
                rate_limit,
                concurrency_limit,
            ),
            errors=error_from_response,
            base_url=base_url,
        )
        lookups_root = check_base_url(lookups_base_url, "lookups_base_url")
        # `+` stays literal in the path: legal there, and never turned into a space.
        self._lookup = self._vendor.route(
            "/v2/PhoneNumbers/{number}",
            "GET",
            base=lookups_root,
            rate_limited=False,
            concurrency_limited=False,  # Lookup is another API than the account's REST one
        )
        self._credentials = credentials
        self._accounts: OrderedDict[TwilioAccount, _Account] = OrderedDict()
        self._fixed = None if fixed is None else self._derive(fixed)

    def __repr__(self) -> str:
        sender = self.from_number or self.messaging_service_sid
        return (
            f"TwilioSmsAdapter(account_sid={self.account_sid!r}, sender={sender!r},"
            f" service={self.service!r})"
        )

    async def _account(self, tenant_id: str | None) -> _Account:
        """The account this call goes out with: the adapter's own, or the tenant's."""
        if self._fixed is not None:
            return self._fixed
        assert self._credentials is not None
        try:
            account = await self._credentials.get_account(self.service, tenant_id)
        except ConnectorError:
            raise
        except Exception as exc:
            raise CredentialRefreshError(
                f"the Twilio credentials provider failed ({type(exc).__name__}); nothing was sent"
            ) from exc
        if not isinstance(account, TwilioAccount):
            raise InvalidRequest("the credentials provider must return a TwilioAccount")
        derived = self._accounts.get(account)
        if derived is None:
            derived = self._accounts[account] = self._derive(account)
            while len(self._accounts) > _ACCOUNT_CACHE:
                self._accounts.popitem(last=False)
        self._accounts.move_to_end(account)
        return derived

    def _derive(self, account: TwilioAccount) -> _Account:
        """The account's routes (its SID in the path), built once per account."""
        root = f"/2010-04-01/Accounts/{account.account_sid}"
        messages = self._vendor.route(f"{root}/Messages.json", body="form")
        # The same account's REST API: its concurrency limit too, not its Messages rate limit.
        balance = self._vendor.route(f"{root}/Balance.json", "GET", rate_limited=False)
        return _Account(account, messages, balance)

    def _sender(self, account: _Account) -> list[tuple[str, str]]:
        # The account's own sender when it names one (a subaccount's numbers are its own).
        from_number, service_sid = self.from_number, self.messaging_service_sid
        if account.from_number is not None or account.messaging_service_sid is not None:
            from_number, service_sid = account.from_number, account.messaging_service_sid
        if from_number is None and service_sid is None:
            raise InvalidRequest("give from_number or messaging_service_sid (or both)")
        form = [] if from_number is None else [("From", from_number)]
        if service_sid is not None:
            form.append(("MessagingServiceSid", service_sid))
        return form

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
        account = await self._account(tenant_id)
        form: list[tuple[str, str]] = [("To", to), *self._sender(account)]
        if body:
            form.append(("Body", body))
        # One plain `MediaUrl` per URL: Twilio wants the key repeated, never `MediaUrl[0]`.
        form.extend(("MediaUrl", url) for url in media)
        if callback is not None:
            form.append(("StatusCallback", callback))
        response = await self._vendor.send(
            account.messages.endpoint,
            form,
            idempotency_key=scoped_key(idempotency_key, account.scope, tenant_id),
            tenant_id=tenant_id,
            idempotent=self.retry_unknown,
            credentials=account.auth,
            errors=account.errors,
        )
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
        account = await self._account(tenant_id)
        response = await self._vendor.send(
            self._lookup.at(number=number),
            {"Fields": "line_type_intelligence"},
            idempotency_key=scoped_key(idempotency_key, account.scope, tenant_id),
            tenant_id=tenant_id,
            credentials=account.auth,
            errors=account.errors,
            service=self.lookups_service,
        )
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
        account = await self._account(tenant_id)
        response = await self._vendor.send(
            account.balance.endpoint,
            idempotency_key=scoped_key(idempotency_key, account.scope, tenant_id),
            tenant_id=tenant_id,
            credentials=account.auth,
            errors=account.errors,
        )
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
