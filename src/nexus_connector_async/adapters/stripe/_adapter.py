"""`StripePaymentAdapter`: PaymentIntents, Refunds and legacy Charges over Stripe's v1 REST API.

Every call goes through `Connector.execute` as a form-encoded request with `Authorization`,
`Stripe-Version` and, on every POST, an `Idempotency-Key` (the caller's, or a fresh UUID that
the pipeline reuses for its retries). The adapter knows Stripe's wire format, errors and its
`Stripe-Should-Retry` header (a `retry_hint` the pipeline asks); the pipeline does retries,
breaker and rate limits. Parameters are built and checked in `_params`, answers read in
`_results`; this module holds the routes and the operations.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, Final, Literal

from ..._config import (
    CircuitBreakerConfig,
    RateLimitConfig,
    RetryPolicy,
    Timeouts,
    vendor_retry_hint,
)
from ..._connector import Connector
from ..._errors import InvalidRequest
from ..._models import IdempotencyKey
from ..._scrub import Scrubber
from ...credentials._base import CredentialProvider
from .._money import Money
from .._payment_adapter import PaymentAdapterBase
from .._payments import Payment, Refund, account_scope, check_id
from .._vendor import FixedCredentials, Policies, VendorClient, header_safe
from ._errors import error_from_response
from ._params import add_notes, amount_params, check_metadata, check_url, minor_units, optional
from ._results import payment_from_charge, payment_from_intent, refund_from

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
_CHARGE_PREFIXES: Final = ("ch_", "py_")


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
            **amount_params(amount),
            "capture_method": capture_method,
        }
        if payment_method is not None:
            params["payment_method"] = check_id(payment_method, "payment_method")
        if confirm:
            params["confirm"] = True
            if return_url is None:
                params["automatic_payment_methods"] = {"enabled": True, "allow_redirects": "never"}
        if return_url is not None:
            params["return_url"] = check_url(return_url, "return_url")
        add_notes(params, description, metadata)
        response = await self._send(self._intents, params, idempotency_key, tenant_id)
        return self._remember(payment_from_intent(response), tenant_id)

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
            payment_method=check_id(payment_method, "payment_method"),
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
        units = None
        if amount is not None:
            units = minor_units(amount, "capture amount")
            await self._check_currency("capture", payment_id, amount, tenant_id)
        if payment_id.startswith(_CHARGE_PREFIXES):
            params = {} if units is None else {"amount": units}
            response = await self._send(
                self._charge_capture, params, idempotency_key, tenant_id, payment_id
            )
            return self._remember(payment_from_charge(response, raise_failed=True), tenant_id)
        params = {} if units is None else {"amount_to_capture": units}
        response = await self._send(
            self._intent_capture, params, idempotency_key, tenant_id, payment_id
        )
        return self._remember(payment_from_intent(response), tenant_id)

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
            return self._remember(payment_from_charge(response), tenant_id)
        response = await self._send(self._intent, None, idempotency_key, tenant_id, payment_id)
        return self._remember(payment_from_intent(response), tenant_id)

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
            params["amount"] = minor_units(amount, "refund amount")
        optional(params, "reason", reason)
        optional(params, "metadata", check_metadata(metadata))
        if amount is not None:
            await self._check_currency("refund", payment_id, amount, tenant_id)
        response = await self._send(self._refunds, params, idempotency_key, tenant_id)
        return refund_from(response)

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
            **amount_params(amount),
            "source": check_id(source, "source"),
            "capture": capture,
        }
        add_notes(params, description, metadata)
        response = await self._send(self._charges, params, idempotency_key, tenant_id)
        return self._remember(payment_from_charge(response, raise_failed=True), tenant_id)

    # -- currencies (rule 33) ------------------------------------------------------------------

    async def _fetch_currency(self, payment_id: str, tenant_id: str | None, kind: str) -> str:
        """The payment's currency, from one `retrieve`."""
        return (await self.retrieve(payment_id, tenant_id=tenant_id)).amount.currency
