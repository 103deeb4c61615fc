"""`StripePaymentAdapter`: PaymentIntents, Refunds and legacy Charges over Stripe's v1 REST API.

Every call goes through `Connector.execute` as a form-encoded request with `Authorization`,
`Stripe-Version` and, on every POST, an `Idempotency-Key` (the caller's, or a fresh UUID that
the pipeline reuses for its retries). The adapter knows Stripe's wire format, errors and its
`Stripe-Should-Retry` header (a `retry_hint` the pipeline asks); the pipeline does retries,
breaker and rate limits.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, Final, Literal, cast

from ..._config import (
    CircuitBreakerConfig,
    RateLimitConfig,
    RetryPolicy,
    Timeouts,
    vendor_retry_hint,
)
from ..._connector import Connector
from ..._errors import InvalidRequest
from ..._models import IdempotencyKey, Response
from ..._scrub import Scrubber
from ...credentials._base import CredentialProvider
from .._money import Money, require_positive
from .._payment_adapter import PaymentAdapterBase, ResponseReader
from .._payments import (
    Payment,
    PaymentStatus,
    Refund,
    RefundStatus,
    account_scope,
    check_id,
    luhn_like,
)
from .._vendor import FixedCredentials, Policies, VendorClient, check_text, header_safe
from ._errors import StripeCardError, StripeResponseError, error_from_response
from ._models import (
    ChargeObject,
    PaymentIntentObject,
    decode_charge,
    decode_payment_intent,
    decode_refund,
)
from ._money import from_stripe_minor, stripe_currency, to_stripe_minor

__all__ = ["DEFAULT_API_VERSION", "DEFAULT_BASE_URL", "StripePaymentAdapter"]

DEFAULT_BASE_URL: Final = "https://api.stripe.com"
#: The version stripe-python 15.3.1 pins; pin yours explicitly (vendor-facts 1.1).
DEFAULT_API_VERSION: Final = "2026-06-24.dahlia"


#: Stripe's own verdict from `Stripe-Should-Retry` (True, False, None when absent), which
#: decides over the status (vendor-facts 1.8): every `RetryPolicy`'s default `retry_hint`.
should_retry: Final = vendor_retry_hint


#: stripe-python's policy (vendor-facts 1.8): 2 retries, 0.5 s doubling to 5 s, retry 409 and
#: every 5xx, 429 only when `Stripe-Should-Retry: true` (`should_retry` reads that header).
DEFAULT_RETRY: Final = RetryPolicy(
    max_attempts=3,
    base_delay=0.5,
    max_delay=5.0,
    retry_statuses=frozenset({409, *range(500, 600)}),
    retry_hint=should_retry,
)
DEFAULT_TIMEOUT: Final = Timeouts(total=80.0, connect=10.0)

CaptureMethod = Literal["automatic", "automatic_async", "manual"]
RefundReason = Literal["duplicate", "fraudulent", "requested_by_customer"]
_CAPTURE_METHODS: Final = frozenset({"automatic", "automatic_async", "manual"})
_REFUND_REASONS: Final = frozenset({"duplicate", "fraudulent", "requested_by_customer"})
_PI_STATUSES: Final[frozenset[str]] = frozenset(
    {
        "requires_payment_method",
        "requires_confirmation",
        "requires_action",
        "processing",
        "requires_capture",
        "canceled",
        "succeeded",
    }
)
_REFUND_STATUSES: Final = frozenset(
    {"pending", "requires_action", "succeeded", "failed", "canceled"}
)
_CHARGE_PREFIXES: Final = ("ch_", "py_")
_METADATA_KEYS: Final = 50
_METADATA_KEY_LEN: Final = 40
_METADATA_VALUE_LEN: Final = 500


class StripePaymentAdapter(PaymentAdapterBase):
    """Payments through Stripe (PaymentIntents; Charges for legacy sources).

    `api_key` is sent as `Authorization: Bearer ...` and never appears in a repr, log line or
    error message. Instead of one key, `credentials` (a `CredentialProvider`) is asked for each
    call's (service, tenant) key, so each tenant's payments go to its own Stripe account.
    `rate_limit`, `retry`, `circuit_breaker` and `timeout` configure the pipeline for the
    `service` name (default "stripe"), so Stripe's state never touches another vendor's;
    a `retry` of your own still heeds `Stripe-Should-Retry` unless it sets a `retry_hint`.
    """

    KEY_HEADER = "Idempotency-Key"
    KEY_LIMIT = 255
    CURRENCY_REFUSED = (
        "{kind} amount is in {asked} but payment {payment_id} is in {currency};"
        " Stripe takes no currency here, so nothing was sent"
    )

    def __init__(
        self,
        connector: Connector,
        api_key: str | None = None,
        base_url: str = DEFAULT_BASE_URL,
        api_version: str = DEFAULT_API_VERSION,
        service: str = "stripe",
        rate_limit: RateLimitConfig | None = None,
        *,
        retry: RetryPolicy = DEFAULT_RETRY,
        circuit_breaker: CircuitBreakerConfig | None = None,
        timeout: Timeouts = DEFAULT_TIMEOUT,
        stripe_account: str | None = None,
        credentials: CredentialProvider | None = None,
    ) -> None:
        if (api_key is None) == (credentials is None):
            raise InvalidRequest("give StripePaymentAdapter an api_key or a credentials provider")
        if api_key is not None:
            header_safe(api_key, "api_key")
        header_safe(api_version, "api_version")
        self.api_version = api_version
        # Per-tenant keys are not known up front: key-like text is scrubbed whatever its value.
        self._secrets = Scrubber((api_key,) if api_key else (), tokenish=api_key is None)
        vendor = VendorClient(
            connector,
            service,
            Policies(timeout, retry, circuit_breaker or CircuitBreakerConfig(), rate_limit),
            errors=functools.partial(error_from_response, secrets=self._secrets),
            base_url=base_url,
            credentials=credentials if credentials is not None else FixedCredentials(api_key or ""),
            example_url=DEFAULT_BASE_URL,
        )
        self._service = service
        headers = {"Stripe-Version": api_version}
        if stripe_account is not None:
            headers["Stripe-Account"] = check_id(stripe_account, "stripe_account")
        # Idempotency is scoped by account (api.md 28): the key (or the provider, with the
        # tenant in every scoped key) and the connected account.
        super().__init__(
            vendor, account_scope("stripe", api_key or "per-tenant provider", stripe_account)
        )
        route = functools.partial(self._vendor.route, body="form", headers=headers)
        post = functools.partial(route, idempotency_header=self.KEY_HEADER)
        self._intents = post("/v1/payment_intents")
        self._intent = route("/v1/payment_intents/{id}", "GET")
        self._intent_capture = post("/v1/payment_intents/{id}/capture")
        self._charges = post("/v1/charges")
        self._charge = route("/v1/charges/{id}", "GET")
        self._charge_capture = post("/v1/charges/{id}/capture")
        self._refunds = post("/v1/refunds")

    def __repr__(self) -> str:
        return (
            f"StripePaymentAdapter(base_url={self._vendor.base!r},"
            f" api_version={self.api_version!r}, "
            f"service={self._service!r})"
        )

    # -- PaymentIntents ---------------------------------------------------------------------

    async def create_payment_intent(
        self,
        amount: Money,
        *,
        payment_method: str | None = None,
        confirm: bool = False,
        capture_method: CaptureMethod = "automatic",
        metadata: Mapping[str, str] | None = None,
        description: str | None = None,
        return_url: str | None = None,
        idempotency_key: IdempotencyKey | None = None,
        tenant_id: str | None = None,
    ) -> Payment:
        """Create (and with `confirm=True` confirm) a PaymentIntent.

        Confirming server-side without a `return_url` sends
        `automatic_payment_methods[allow_redirects]=never`, so methods that need a redirect are
        not offered and Stripe does not demand a `return_url` (vendor-facts 1.5). A result with
        `requires_action` (3-D Secure) is returned, not raised: it is not paid.
        """
        if not isinstance(confirm, bool):
            raise InvalidRequest("confirm must be a bool")
        if not isinstance(capture_method, str) or capture_method not in _CAPTURE_METHODS:
            raise InvalidRequest(f"capture_method must be one of {sorted(_CAPTURE_METHODS)}")
        params: dict[str, Any] = {
            **_amount_params(amount),
            "capture_method": capture_method,
        }
        if payment_method is not None:
            params["payment_method"] = check_id(payment_method, "payment_method")
        if confirm:
            params["confirm"] = True
            if return_url is None:
                params["automatic_payment_methods"] = {"enabled": True, "allow_redirects": "never"}
        if return_url is not None:
            params["return_url"] = _check_url(return_url, "return_url")
        _optional(params, "description", check_text(description, "description", 1000))
        _optional(params, "metadata", _check_metadata(metadata))
        response = await self._send(self._intents, params, idempotency_key, tenant_id)
        return self._remember(_payment_from_intent(response), tenant_id)

    async def charge(
        self,
        amount: Money,
        payment_method: str,
        *,
        metadata: Mapping[str, str] | None = None,
        description: str | None = None,
        return_url: str | None = None,
        idempotency_key: IdempotencyKey | None = None,
        tenant_id: str | None = None,
    ) -> Payment:
        """Create and confirm a PaymentIntent that captures at once.

        Without `return_url` no redirect-based method is offered; a card that needs 3-D Secure
        then comes back `requires_action` with `next_action="use_stripe_sdk"` and the
        `client_secret` for Stripe.js. With `return_url`, `action_url` is the redirect.
        """
        kw = {"metadata": metadata, "description": description, "return_url": return_url}
        return await self._confirm(
            "automatic", amount, payment_method, idempotency_key, tenant_id, kw
        )

    async def authorize(
        self,
        amount: Money,
        payment_method: str,
        *,
        metadata: Mapping[str, str] | None = None,
        description: str | None = None,
        return_url: str | None = None,
        idempotency_key: IdempotencyKey | None = None,
        tenant_id: str | None = None,
    ) -> Payment:
        """Confirm with `capture_method=manual`: funds held (`requires_capture`) until `capture`.

        `return_url` as for `charge`.
        """
        kw = {"metadata": metadata, "description": description, "return_url": return_url}
        return await self._confirm("manual", amount, payment_method, idempotency_key, tenant_id, kw)

    async def _confirm(
        self,
        capture_method: CaptureMethod,
        amount: Money,
        payment_method: str,
        key: IdempotencyKey | None,
        tenant_id: str | None,
        kw: dict[str, Any],
    ) -> Payment:
        """`charge` and `authorize`: a PaymentIntent confirmed at once with `capture_method`."""
        return await self.create_payment_intent(
            amount,
            payment_method=_required_id(payment_method, "payment_method"),
            confirm=True,
            capture_method=capture_method,
            idempotency_key=key,
            tenant_id=tenant_id,
            **kw,
        )

    async def capture(
        self,
        payment_id: str,
        amount: Money | None = None,
        *,
        idempotency_key: IdempotencyKey | None = None,
        tenant_id: str | None = None,
    ) -> Payment:
        """Capture an authorized PaymentIntent (or legacy `ch_` charge), all or `amount` of it.

        Stripe takes no currency here, so an `amount` in another currency than the payment's is
        refused with `InvalidRequest` before anything is sent (one GET learns the payment's
        currency when this adapter has not seen it). The result's `amount` is what was captured.
        """
        payment_id = check_id(payment_id, "payment_id")
        minor = None
        if amount is not None:
            minor = _minor(amount, "capture amount")
            await self._check_currency("capture", payment_id, amount, tenant_id)
        if payment_id.startswith(_CHARGE_PREFIXES):
            params = {} if minor is None else {"amount": minor}
            response = await self._send(
                self._charge_capture, params, idempotency_key, tenant_id, payment_id
            )
            return self._remember(_payment_from_charge(response, raise_failed=True), tenant_id)
        params = {} if minor is None else {"amount_to_capture": minor}
        response = await self._send(
            self._intent_capture, params, idempotency_key, tenant_id, payment_id
        )
        return self._remember(_payment_from_intent(response), tenant_id)

    async def retrieve(
        self,
        payment_id: str,
        *,
        idempotency_key: IdempotencyKey | None = None,
        tenant_id: str | None = None,
    ) -> Payment:
        """The PaymentIntent (or legacy `ch_` charge) as Stripe has it now.

        A GET is safe to repeat, so no key is generated; a key given here only makes the
        pipeline replay the first answer for it.
        """
        payment_id = check_id(payment_id, "payment_id")
        if payment_id.startswith(_CHARGE_PREFIXES):
            response = await self._send(self._charge, None, idempotency_key, tenant_id, payment_id)
            return self._remember(_payment_from_charge(response), tenant_id)
        response = await self._send(self._intent, None, idempotency_key, tenant_id, payment_id)
        return self._remember(_payment_from_intent(response), tenant_id)

    # -- Refunds ----------------------------------------------------------------------------

    async def refund(
        self,
        payment_id: str,
        amount: Money | None = None,
        *,
        reason: RefundReason | None = None,
        metadata: Mapping[str, str] | None = None,
        idempotency_key: IdempotencyKey | None = None,
        tenant_id: str | None = None,
    ) -> Refund:
        """Refund a PaymentIntent (or a `ch_`/`py_` charge): everything left, or `amount`.

        An `amount` in another currency than the payment's is refused before sending, as in
        `capture`. The answer is read leniently (a payment in BGN or HRK refunds fine); an
        unreadable 2xx raises `StripeResponseError` (the refund may be made: do not resend).
        """
        payment_id = check_id(payment_id, "payment_id")
        if reason is not None and (not isinstance(reason, str) or reason not in _REFUND_REASONS):
            raise InvalidRequest(f"reason must be one of {sorted(_REFUND_REASONS)}")
        target = "charge" if payment_id.startswith(_CHARGE_PREFIXES) else "payment_intent"
        params: dict[str, Any] = {target: payment_id}
        if amount is not None:
            params["amount"] = _minor(amount, "refund amount")
        _optional(params, "reason", reason)
        _optional(params, "metadata", _check_metadata(metadata))
        if amount is not None:
            await self._check_currency("refund", payment_id, amount, tenant_id)
        response = await self._send(self._refunds, params, idempotency_key, tenant_id)
        obj = _decode(decode_refund, response)
        raw = obj.status or "pending"
        status = cast("RefundStatus", raw if raw in _REFUND_STATUSES else "pending")
        return Refund(
            vendor="stripe",
            id=obj.id,
            status=status,
            raw_status=raw,
            amount=_read_money(obj.amount, obj.currency, response),
            payment_id=obj.payment_intent or obj.charge,
            request_id=_request_id(response),
            replayed=response.replayed,
        )

    # -- legacy Charges ---------------------------------------------------------------------

    async def create_charge(
        self,
        amount: Money,
        source: str,
        *,
        capture: bool = True,
        description: str | None = None,
        metadata: Mapping[str, str] | None = None,
        idempotency_key: IdempotencyKey | None = None,
        tenant_id: str | None = None,
    ) -> Payment:
        """A legacy Charge from a token or card id (`tok_...`); `capture=False` only authorizes."""
        if not isinstance(capture, bool):
            raise InvalidRequest("capture must be a bool")
        params: dict[str, Any] = {
            **_amount_params(amount),
            "source": _required_id(source, "source"),
            "capture": capture,
        }
        _optional(params, "description", check_text(description, "description", 1000))
        _optional(params, "metadata", _check_metadata(metadata))
        response = await self._send(self._charges, params, idempotency_key, tenant_id)
        return self._remember(_payment_from_charge(response, raise_failed=True), tenant_id)

    # -- currencies (rule 33) ------------------------------------------------------------------

    async def _fetch_currency(self, payment_id: str, tenant_id: str | None, kind: str) -> str:
        """The payment's currency, from one `retrieve`."""
        return (await self.retrieve(payment_id, tenant_id=tenant_id)).amount.currency


# -- payload building ------------------------------------------------------------------------


def _minor(amount: Money, what: str) -> int:
    return to_stripe_minor(require_positive(amount, what))


def _amount_params(amount: Money) -> dict[str, Any]:
    return {"amount": _minor(amount, "amount"), "currency": stripe_currency(amount)}


def _required_id(value: object, what: str) -> str:
    return check_id(value, what)


def _optional(params: dict[str, Any], name: str, value: object) -> None:
    if value is not None:
        params[name] = value


def _check_url(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.startswith(("https://", "http://")):
        raise InvalidRequest(f"{what} must be an http(s) URL")
    return value


def _check_metadata(metadata: Mapping[str, str] | None) -> dict[str, str] | None:
    """Stripe's metadata limits, and no card-number-like values (Stripe forbids storing them)."""
    if metadata is None:
        return None
    if not isinstance(metadata, Mapping) or len(metadata) > _METADATA_KEYS:
        raise InvalidRequest(f"metadata must be a mapping of at most {_METADATA_KEYS} entries")
    out: dict[str, str] = {}
    for key, value in metadata.items():
        if (
            not isinstance(key, str)
            or not 1 <= len(key) <= _METADATA_KEY_LEN
            or any(c in key for c in "[]")
        ):
            raise InvalidRequest(
                f"metadata keys must be str of 1-{_METADATA_KEY_LEN} characters without brackets"
            )
        if not isinstance(value, str) or len(value) > _METADATA_VALUE_LEN:
            raise InvalidRequest(
                f"metadata values must be str of at most {_METADATA_VALUE_LEN} characters"
            )
        if luhn_like(value) or luhn_like(key):
            # Named by position only: the message must not carry the number itself.
            raise InvalidRequest("metadata must not contain card numbers")
        out[key] = value
    return out


# -- results ---------------------------------------------------------------------------------


def _request_id(response: Response) -> str | None:
    return response.headers.get("Request-Id")


#: Stripe's 2xx bodies: an unreadable one is a `StripeResponseError` (rule 34).
_READ: Final = ResponseReader("stripe", "Stripe", StripeResponseError, _request_id)
_decode: Final = _READ.decode


def _read_money(amount: int, currency: str, response: Response) -> Money:
    """Stripe's amount read leniently (rule 34); a value that is no amount is a vendor error."""
    try:
        return from_stripe_minor(amount, currency)
    except InvalidRequest:
        raise _READ.unreadable(response, "unreadable amount") from None


def _payment_from_intent(response: Response) -> Payment:
    pi: PaymentIntentObject = _decode(decode_payment_intent, response)
    status = cast("PaymentStatus", pi.status if pi.status in _PI_STATUSES else "processing")
    action = pi.next_action
    url = action.redirect_to_url.url if action and action.redirect_to_url else None
    authorized = _read_money(pi.amount, pi.currency, response)
    amount = authorized
    if status == "succeeded" and pi.amount_received:
        # After a partial capture Stripe keeps `amount` (asked) and reports the collected
        # part in `amount_received` (rule 35).
        amount = _read_money(pi.amount_received, pi.currency, response)
    return Payment(
        vendor="stripe",
        id=pi.id,
        status=status,
        raw_status=pi.status,
        amount=amount,
        authorized_amount=authorized,
        request_id=_request_id(response),
        action_url=url,
        client_secret=pi.client_secret,
        next_action=action.type if action else None,
        replayed=response.replayed,
    )


def _payment_from_charge(response: Response, *, raise_failed: bool = False) -> Payment:
    ch: ChargeObject = _decode(decode_charge, response)
    if raise_failed and ch.status == "failed":
        # A 2xx carrying a failed charge is a decline, not a result (rule 36).
        exc = StripeCardError(
            response,
            vendor="stripe",
            code=ch.failure_code or "card_declined",
            message=ch.failure_message,
            request_id=_request_id(response),
            decline_code=ch.outcome.reason if ch.outcome else None,
        )
        exc.charge_id = ch.id
        raise exc
    status: PaymentStatus
    if ch.refunded:
        status = "refunded"
    elif ch.status == "succeeded":
        status = "succeeded" if ch.captured else "requires_capture"
    elif ch.status == "failed":
        status = "failed"
    else:
        status = "processing"
    authorized = _read_money(ch.amount, ch.currency, response)
    amount = authorized
    if ch.captured and ch.amount_captured:
        amount = _read_money(ch.amount_captured, ch.currency, response)
    return Payment(
        vendor="stripe",
        id=ch.id,
        status=status,
        raw_status=ch.status,
        amount=amount,
        authorized_amount=authorized,
        request_id=_request_id(response),
        replayed=response.replayed,
    )
