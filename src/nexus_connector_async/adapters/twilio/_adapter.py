"""`TwilioSmsAdapter`: Programmable Messaging, Balance and Lookup v2 through the pipeline.

Twilio has no idempotency key for Messages create, so a send is made at most once: only
429/20429 ("not processed") and connection failures before sending are retried, unless the
adapter is built with `retry_unknown=True`. Which account a call goes out with is
`_accounts`' concern, the form and the answers `_payloads`'; this module holds the operations.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import msgspec

from ..._config import (
    CircuitBreakerConfig,
    ConcurrencyLimit,
    RateLimitConfig,
    RetryPolicy,
    Timeouts,
)
from ..._connector import Connector
from ..._errors import InvalidRequest
from ..._models import IdempotencyKey
from .._money import Money
from .._payments import scoped_key
from .._phone import count_segments, validate_e164, validate_sms_body
from .._sms import BulkSender, PhoneNumberInfo, SmsResult
from .._vendor import Policies, VendorClient, check_base_url
from ._accounts import (
    Account,
    Accounts,
    TwilioAccount,
    TwilioAccountProvider,
    check_sender,
    check_service_sid,
)
from ._errors import TWILIO, TwilioError, error_from_response
from ._models import decode_balance, decode_lookup, decode_message
from ._payloads import (
    check_media,
    check_status_callback,
    decode,
    int_or_none,
    message_form,
    number_info,
    price,
)

__all__ = ["TwilioSmsAdapter"]

_MAX_BODY_CHARS: Final = 1600
# Twilio's documented "not processed" answer: resending cannot duplicate a message.
_NOT_PROCESSED: Final = frozenset({429})
_DEFAULT_RETRY: Final = RetryPolicy(max_attempts=3, base_delay=0.25, max_delay=10.0)


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
        self.from_number = None if from_number is None else check_sender(from_number)
        self.messaging_service_sid = check_service_sid(messaging_service_sid)
        self.service = service
        self.lookups_service = lookups_service or f"{service}-lookups"
        self.status_callback = (
            None if status_callback is None else check_status_callback(status_callback)
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
        self._accounts = Accounts(self._vendor, fixed, credentials)

    def __repr__(self) -> str:
        sender = self.from_number or self.messaging_service_sid
        return (
            f"TwilioSmsAdapter(account_sid={self.account_sid!r}, sender={sender!r},"
            f" service={self.service!r})"
        )

    def _sender(self, account: Account) -> list[tuple[str, str]]:
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
        media = check_media(media_urls)
        if body or not media:
            validate_sms_body(body, max_chars=_MAX_BODY_CHARS)
        callback = self.status_callback
        if status_callback is not None:
            callback = check_status_callback(status_callback)
        counted = count_segments(body)
        account = await self._accounts.get(tenant_id)
        form = message_form(to, self._sender(account), body, media, callback)
        response = await self._vendor.send(
            account.messages.endpoint,
            form,
            idempotency_key=scoped_key(idempotency_key, account.scope, tenant_id),
            tenant_id=tenant_id,
            idempotent=self.retry_unknown,
            credentials=account.auth,
            errors=account.errors,
        )
        message = decode(response, decode_message)
        vendor_segments = int_or_none(message.num_segments)
        return SmsResult(
            to=message.to or to,
            message_id=message.sid,
            status=message.status,
            segments=vendor_segments or counted.segments,
            price=price(message.price, message.price_unit),
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
        account = await self._accounts.get(tenant_id)
        response = await self._vendor.send(
            self._lookup.at(number=number),
            {"Fields": "line_type_intelligence"},
            idempotency_key=scoped_key(idempotency_key, account.scope, tenant_id),
            tenant_id=tenant_id,
            credentials=account.auth,
            errors=account.errors,
            service=self.lookups_service,
        )
        return number_info(decode(response, decode_lookup), number)

    async def balance(
        self,
        *,
        idempotency_key: IdempotencyKey | None = None,
        tenant_id: str | None = None,
    ) -> Money:
        """The account balance (it can lag behind real spend; subaccounts have none)."""
        account = await self._accounts.get(tenant_id)
        response = await self._vendor.send(
            account.balance.endpoint,
            idempotency_key=scoped_key(idempotency_key, account.scope, tenant_id),
            tenant_id=tenant_id,
            credentials=account.auth,
            errors=account.errors,
        )
        found = decode(response, decode_balance)
        if found.balance is None or found.currency is None:
            raise TwilioError(
                response, vendor=TWILIO, message="no balance information (a subaccount?)"
            )
        try:
            # Read leniently (api.md rule 34): any 3-letter account currency.
            return Money.from_vendor(found.balance, found.currency)
        except InvalidRequest:
            raise TwilioError(response, vendor=TWILIO, message="unreadable balance") from None
