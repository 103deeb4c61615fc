"""`PayPalPaymentAdapter`: Orders v2 and Payments v2 over PayPal's REST API.

JSON in, JSON out. Every POST carries `PayPal-Request-Id` (the caller's key or a fresh UUID
that the pipeline reuses for its retries), `Prefer: return=representation` (so capture and
authorization ids come back) and `Content-Type: application/json`, with `{}` as the body when
there is nothing to send. The OAuth2 token is fetched and shared through the connector's
backend by `OAuth2CredentialProvider` and passed per call, so no other service sees it.
"""

from __future__ import annotations

import functools
import re
from typing import Any, Final, Literal

import msgspec

from ..._config import CircuitBreakerConfig, RateLimitConfig, RetryPolicy, Timeouts
from ..._connector import Connector
from ..._errors import ConnectorError, InvalidRequest
from ..._models import Credentials, IdempotencyKey, Response
from ..._scrub import Scrubber
from ...credentials._base import CredentialProvider, RefreshesRejected
from ...credentials._oauth2 import OAuth2CredentialProvider
from .._money import Money, require_positive
from .._payment_adapter import PaymentAdapterBase, ResponseReader
from .._payments import Payment, PaymentStatus, Refund, RefundStatus, account_scope, check_id
from .._vendor import Policies, VendorClient, check_text, header_safe
from ._errors import PayPalDeclined, PayPalResponseError, clean, debug_id, error_from_response
from ._models import (
    AmountObject,
    AuthorizationObject,
    CaptureObject,
    OrderObject,
    RefundObject,
    decode_capture,
    decode_order,
    decode_refund,
)
from ._money import from_paypal_amount, to_paypal_amount

__all__ = ["LIVE_URL", "SANDBOX_URL", "PayPalPaymentAdapter"]

SANDBOX_URL: Final = "https://api-m.sandbox.paypal.com"
LIVE_URL: Final = "https://api-m.paypal.com"
#: PayPal keeps request ids for 6 h (Orders) to 45 days (Payments): retries with the same id
#: are safe, so 409 PREVIOUS_REQUEST_IN_PROGRESS, 429 and 5xx are retried.
DEFAULT_RETRY: Final = RetryPolicy(
    max_attempts=3,
    base_delay=0.5,
    max_delay=10.0,
    retry_statuses=frozenset({409, 429, 500, 502, 503, 504}),
)
DEFAULT_TIMEOUT: Final = Timeouts(total=60.0, connect=10.0)
_MAX_REQUEST_ID: Final = 108

Intent = Literal["CAPTURE", "AUTHORIZE"]
SourceType = Literal["card", "paypal", "venmo"]
_SOURCES: Final = frozenset({"card", "paypal", "venmo"})
# Order ids in the Orders v2 spec: ^[A-Z0-9]+$, at most 36 characters.
_ORDER_ID = re.compile(r"[A-Z0-9]{1,36}")

_ORDER_STATUS: Final[dict[str, PaymentStatus]] = {
    "CREATED": "requires_action",  # the buyer must approve it first
    "PAYER_ACTION_REQUIRED": "requires_action",
    "SAVED": "requires_confirmation",
    "APPROVED": "requires_confirmation",  # approved: capture_order / authorize_order next
    "VOIDED": "canceled",
    "COMPLETED": "succeeded",
}
_CAPTURE_STATUS: Final[dict[str, PaymentStatus]] = {
    "COMPLETED": "succeeded",
    "PARTIALLY_REFUNDED": "succeeded",
    "REFUNDED": "refunded",
    "PENDING": "processing",
    "DECLINED": "failed",
    "FAILED": "failed",
}
#: Capture statuses that mean no money moved although PayPal answered 2xx (rule 36).
_FAILED_CAPTURES: Final = frozenset({"DECLINED", "FAILED"})
_AUTHORIZATION_STATUS: Final[dict[str, PaymentStatus]] = {
    "CREATED": "requires_capture",
    "PENDING": "processing",
    "CAPTURED": "succeeded",
    "PARTIALLY_CAPTURED": "succeeded",
    "DENIED": "failed",
    "VOIDED": "canceled",
    "EXPIRED": "canceled",
}
_REFUND_STATUS: Final[dict[str, RefundStatus]] = {
    "COMPLETED": "succeeded",
    "PENDING": "pending",
    "FAILED": "failed",
    "CANCELLED": "canceled",
}


class _ClientToken:
    """One token per PayPal app, whatever the tenant: tenants share the client credentials."""

    def __init__(self, provider: CredentialProvider) -> None:
        self._provider = provider

    def __repr__(self) -> str:
        return f"_ClientToken({self._provider!r})"

    async def get_credentials(
        self, service: str, tenant_id: str | None = None
    ) -> Credentials | None:
        return await self._provider.get_credentials(service, None)

    async def refresh_credentials(
        self, service: str, tenant_id: str | None = None
    ) -> Credentials | None:
        return await self._provider.refresh_credentials(service, None)

    async def refresh_if_current(
        self, service: str, tenant_id: str | None, rejected: Credentials
    ) -> Credentials | None:
        if isinstance(self._provider, RefreshesRejected):
            return await self._provider.refresh_if_current(service, None, rejected)
        return await self._provider.refresh_credentials(service, None)


class PayPalPaymentAdapter(PaymentAdapterBase):
    """Payments through PayPal Checkout Orders v2 and Payments v2.

    `sandbox=True` (PayPal's own SDK default) targets the sandbox; `base_url` overrides both.
    `credentials` replaces the built-in `OAuth2CredentialProvider`: it is asked for
    (service, tenant) on every call, so each tenant's calls go out with that tenant's token
    (its own merchant account, api.md rule 37). The built-in provider serves one token for
    the app whatever the tenant.
    `client_secret` and tokens never appear in a repr, log line or error message.
    """

    KEY_HEADER = "PayPal-Request-Id"
    KEY_LIMIT = _MAX_REQUEST_ID
    CURRENCY_REFUSED = "amount is in {asked} but {payment_id} is in {currency}; nothing was sent"

    def __init__(
        self,
        connector: Connector,
        client_id: str,
        client_secret: str,
        sandbox: bool = True,
        base_url: str | None = None,
        service: str = "paypal",
        rate_limit: RateLimitConfig | None = None,
        *,
        credentials: CredentialProvider | None = None,
        retry: RetryPolicy = DEFAULT_RETRY,
        circuit_breaker: CircuitBreakerConfig | None = None,
        timeout: Timeouts = DEFAULT_TIMEOUT,
    ) -> None:
        header_safe(client_id, "client_id")
        header_safe(client_secret, "client_secret")
        self._service = service
        self._secrets = Scrubber((client_secret,), tokenish=True)
        # The client secret must not cross a network in clear: the client checks the URL.
        # Idempotency is scoped by account (api.md 28): the app's credentials.
        super().__init__(
            VendorClient(
                connector,
                service,
                Policies(timeout, retry, circuit_breaker or CircuitBreakerConfig(), rate_limit),
                errors=functools.partial(error_from_response, secrets=self._secrets),
                base_url=(
                    base_url if base_url is not None else (SANDBOX_URL if sandbox else LIVE_URL)
                ),
                credentials=credentials,
                example_url=LIVE_URL,
            ),
            account_scope("paypal", client_id, client_secret),
        )
        if credentials is None:
            # The platform's own app: one token whatever the tenant.
            self._vendor.credentials = _ClientToken(
                OAuth2CredentialProvider(
                    f"{self._vendor.base}/v1/oauth2/token",
                    client_id,
                    client_secret,
                    backend=connector.backend,
                    services=[service],
                )
            )
        post = functools.partial(
            self._vendor.route,
            headers={"Accept": "application/json", "Prefer": "return=representation"},
            idempotency_header=self.KEY_HEADER,
        )
        get = functools.partial(
            self._vendor.route, method="GET", headers={"Accept": "application/json"}
        )
        self._orders = post("/v2/checkout/orders")
        self._order = get("/v2/checkout/orders/{id}")
        self._order_capture = post("/v2/checkout/orders/{id}/capture")
        self._order_authorize = post("/v2/checkout/orders/{id}/authorize")
        self._authorization_capture = post("/v2/payments/authorizations/{id}/capture")
        self._capture_refund = post("/v2/payments/captures/{id}/refund")
        self._lookups = {
            kind: get(f"/v2/payments/{kind}/{{id}}")
            for kind in ("authorizations", "captures", "refunds")
        }

    def __repr__(self) -> str:
        return f"PayPalPaymentAdapter(base_url={self._vendor.base!r}, service={self._service!r})"

    # -- Orders v2 ------------------------------------------------------------------------------

    async def create_order(
        self,
        amount: Money,
        *,
        intent: Intent = "CAPTURE",
        reference_id: str | None = None,
        return_url: str | None = None,
        cancel_url: str | None = None,
        idempotency_key: IdempotencyKey | None = None,
        tenant_id: str | None = None,
    ) -> Payment:
        """Create an order for the buyer to approve; `action_url` is where to send them.

        With `return_url`/`cancel_url` the order is set up for the PayPal wallet redirect
        (`payment_source.paypal.experience_context`); without them, for PayPal's JS buttons.
        """
        body = self._order_body(amount, intent, reference_id)
        if return_url is not None or cancel_url is not None:
            context = {"return_url": _url(return_url), "cancel_url": _url(cancel_url)}
            context = {k: v for k, v in context.items() if v is not None}
            body["payment_source"] = {"paypal": {"experience_context": context}}
        response = await self._send(self._orders, body, idempotency_key, tenant_id)
        return self._from_order(response, raise_declined=True)

    async def get_order(
        self,
        order_id: str,
        *,
        idempotency_key: IdempotencyKey | None = None,
        tenant_id: str | None = None,
    ) -> Payment:
        """The order as PayPal has it now (a DECLINED capture shows as `failed`, not raised)."""
        order_id = check_id(order_id, "order_id", _ORDER_ID)
        response = await self._send(self._order, None, idempotency_key, tenant_id, order_id)
        return self._from_order(response, raise_declined=False)

    async def capture_order(
        self,
        order_id: str,
        *,
        idempotency_key: IdempotencyKey | None = None,
        tenant_id: str | None = None,
    ) -> Payment:
        """Capture an approved CAPTURE order; the result's `id` is the capture id."""
        return await self._order_action(order_id, "capture", idempotency_key, tenant_id)

    async def authorize_order(
        self,
        order_id: str,
        *,
        idempotency_key: IdempotencyKey | None = None,
        tenant_id: str | None = None,
    ) -> Payment:
        """Authorize an approved AUTHORIZE order; the result's `id` is the authorization id."""
        return await self._order_action(order_id, "authorize", idempotency_key, tenant_id)

    async def _order_action(
        self,
        order_id: str,
        action: str,
        idempotency_key: IdempotencyKey | None,
        tenant_id: str | None,
    ) -> Payment:
        """POST /v2/checkout/orders/{id}/{capture|authorize}: the payment it made, remembered."""
        order_id = check_id(order_id, "order_id", _ORDER_ID)
        route = self._order_capture if action == "capture" else self._order_authorize
        response = await self._send(route, {}, idempotency_key, tenant_id, order_id)
        return self._remember(self._from_order(response, raise_declined=True), tenant_id)

    # -- Payments v2 ----------------------------------------------------------------------------

    async def capture_authorization(
        self,
        authorization_id: str,
        amount: Money | None = None,
        *,
        final_capture: bool = True,
        idempotency_key: IdempotencyKey | None = None,
        tenant_id: str | None = None,
    ) -> Payment:
        """Capture all (or `amount`) of an authorization; `final_capture=False` keeps it open."""
        authorization_id = check_id(authorization_id, "authorization_id")
        if not isinstance(final_capture, bool):
            raise InvalidRequest("final_capture must be a bool")
        body: dict[str, Any] = {"final_capture": final_capture}
        if amount is not None:
            body["amount"] = to_paypal_amount(require_positive(amount, "capture amount"))
            await self._check_currency("authorizations", authorization_id, amount, tenant_id)
        response = await self._send(
            self._authorization_capture, body, idempotency_key, tenant_id, authorization_id
        )
        capture = _READ.decode(decode_capture, response)
        if capture.amount is None:
            capture = await self._fetch_capture(capture, amount, tenant_id)
        payment = self._from_capture(capture, response, None, None, raise_declined=True)
        return self._remember(payment, tenant_id)

    async def refund_capture(
        self,
        capture_id: str,
        amount: Money | None = None,
        *,
        idempotency_key: IdempotencyKey | None = None,
        tenant_id: str | None = None,
    ) -> Refund:
        """Refund what is left of a capture (`{}`), or `amount` of it."""
        capture_id = check_id(capture_id, "capture_id")
        body: dict[str, Any] = {}
        if amount is not None:
            body["amount"] = to_paypal_amount(require_positive(amount, "refund amount"))
            await self._check_currency("captures", capture_id, amount, tenant_id)
        response = await self._send(
            self._capture_refund, body, idempotency_key, tenant_id, capture_id
        )
        refund = _READ.decode(decode_refund, response)
        if refund.amount is None and amount is None:
            # A minimal answer (id, status, links) after the refund was made: read the refund
            # back instead of failing a refund that happened.
            refund = await self._fetch_refund(refund, response, tenant_id)
        money = _money(refund.amount, amount, response)
        return Refund(
            vendor="paypal",
            id=refund.id,
            status=_REFUND_STATUS.get(refund.status, "pending"),
            raw_status=refund.status,
            amount=money,
            payment_id=capture_id,
            request_id=debug_id(response),
            replayed=response.replayed,
        )

    async def _fetch_currency(self, payment_id: str, tenant_id: str | None, kind: str) -> str:
        """The currency of an authorization or capture (`kind`), read back from PayPal."""
        response = await self._send(self._lookups[kind], None, None, tenant_id, payment_id)
        found = _READ.decode(decode_capture, response)
        return _money(found.amount, None, response).currency

    async def _fetch_refund(
        self, refund: RefundObject, response: Response, tenant_id: str | None
    ) -> RefundObject:
        try:
            refund_id = check_id(refund.id, "refund id")
            fetched = await self._send(self._lookups["refunds"], None, None, tenant_id, refund_id)
        except ConnectorError:  # InvalidRequest included (an id unsafe in a path)
            raise _READ.unreadable(
                response, "the refund was made but its amount is unknown"
            ) from None
        return _READ.decode(decode_refund, fetched)

    async def _fetch_capture(
        self, capture: CaptureObject, asked: Money | None, tenant_id: str | None
    ) -> CaptureObject:
        if asked is not None:
            return capture  # _money falls back to what was asked
        try:
            capture_id = check_id(capture.id, "capture id")
            fetched = await self._send(self._lookups["captures"], None, None, tenant_id, capture_id)
        except ConnectorError:
            return capture  # _money then reports the missing amount as a vendor error
        return _READ.decode(decode_capture, fetched)

    # -- the PaymentGateway protocol -------------------------------------------------------------

    async def charge(
        self,
        amount: Money,
        payment_method: str,
        *,
        source: SourceType = "card",
        reference_id: str | None = None,
        idempotency_key: IdempotencyKey | None = None,
        tenant_id: str | None = None,
    ) -> Payment:
        """Capture `amount` from a vaulted payment source (`payment_source.<source>.vault_id`).

        One create-order call: PayPal processes a vaulted source at once, so the result's `id`
        is the capture id (what `refund` takes); a DECLINED capture raises `PaymentDeclined`.
        """
        return await self._vaulted_order(
            "CAPTURE", amount, payment_method, source, reference_id, idempotency_key, tenant_id
        )

    async def authorize(
        self,
        amount: Money,
        payment_method: str,
        *,
        source: SourceType = "card",
        reference_id: str | None = None,
        idempotency_key: IdempotencyKey | None = None,
        tenant_id: str | None = None,
    ) -> Payment:
        """Authorize `amount` on a vaulted source; the result's `id` is what `capture` takes."""
        return await self._vaulted_order(
            "AUTHORIZE", amount, payment_method, source, reference_id, idempotency_key, tenant_id
        )

    async def capture(
        self,
        payment_id: str,
        amount: Money | None = None,
        *,
        idempotency_key: IdempotencyKey | None = None,
        tenant_id: str | None = None,
    ) -> Payment:
        """`capture_authorization` (final capture) of an authorization id from `authorize`."""
        return await self.capture_authorization(
            payment_id, amount, idempotency_key=idempotency_key, tenant_id=tenant_id
        )

    async def refund(
        self,
        payment_id: str,
        amount: Money | None = None,
        *,
        idempotency_key: IdempotencyKey | None = None,
        tenant_id: str | None = None,
    ) -> Refund:
        """`refund_capture` of a capture id from `charge` / `capture` / `capture_order`."""
        return await self.refund_capture(
            payment_id, amount, idempotency_key=idempotency_key, tenant_id=tenant_id
        )

    # -- request building ------------------------------------------------------------------------

    @staticmethod
    def _order_body(amount: Money, intent: str, reference_id: str | None) -> dict[str, Any]:
        if not isinstance(intent, str) or intent not in ("CAPTURE", "AUTHORIZE"):
            raise InvalidRequest("intent must be 'CAPTURE' or 'AUTHORIZE'")
        unit: dict[str, Any] = {"amount": to_paypal_amount(require_positive(amount))}
        if reference_id is not None:
            if not check_text(reference_id, "reference_id", 256):
                raise InvalidRequest("reference_id must not be empty")
            unit = {"reference_id": reference_id, **unit}
        return {"intent": intent, "purchase_units": [unit]}

    async def _vaulted_order(
        self,
        intent: str,
        amount: Money,
        payment_method: str,
        source: str,
        reference_id: str | None,
        key: IdempotencyKey | None,
        tenant_id: str | None,
    ) -> Payment:
        """One create-order call paying from a vaulted source; its payment, remembered."""
        if not isinstance(source, str) or source not in _SOURCES:
            raise InvalidRequest(f"source must be one of {sorted(_SOURCES)}")
        vault_id = check_id(payment_method, "payment_method (a PayPal vault id)")
        body = self._order_body(amount, intent, reference_id)
        body["payment_source"] = {source: {"vault_id": vault_id}}
        response = await self._send(self._orders, body, key, tenant_id)
        return self._remember(self._from_order(response, raise_declined=True), tenant_id)

    # -- results -------------------------------------------------------------------------------

    def _from_order(self, response: Response, *, raise_declined: bool) -> Payment:
        order: OrderObject = _READ.decode(decode_order, response)
        unit = order.purchase_units[0] if order.purchase_units else None
        payments = unit.payments if unit is not None else None
        unit_amount = unit.amount if unit is not None else None
        if payments is not None and payments.captures:
            payment = self._from_capture(
                payments.captures[-1], response, order.id, unit_amount, raise_declined
            )
            if unit_amount is not None:
                authorized = _money(unit_amount, None, response)
                payment = msgspec.structs.replace(payment, authorized_amount=authorized)
            return payment
        if payments is not None and payments.authorizations:
            return self._from_authorization(
                payments.authorizations[-1], response, order.id, unit_amount, raise_declined
            )
        return Payment(
            vendor="paypal",
            id=order.id,
            status=_ORDER_STATUS.get(order.status, "processing"),
            raw_status=order.status,
            amount=_money(unit_amount, None, response),
            request_id=debug_id(response),
            order_id=order.id,
            action_url=order.link("payer-action", "approve"),
            replayed=response.replayed,
        )

    def _from_capture(
        self,
        capture: CaptureObject,
        response: Response,
        order_id: str | None,
        fallback: AmountObject | None,
        raise_declined: bool,
    ) -> Payment:
        if raise_declined and capture.status in _FAILED_CAPTURES:
            # A 2xx does not prove money moved (vendor-facts 2.5): DECLINED and FAILED raise.
            reason = capture.status_details.reason if capture.status_details else None
            processor = capture.processor_response
            raise PayPalDeclined(
                response,
                vendor="paypal",
                code=capture.status,
                message=clean(f"capture {capture.id} was {capture.status.lower()}", self._secrets),
                request_id=debug_id(response),
                decline_code=(processor.response_code if processor else None) or reason,
            )
        return Payment(
            vendor="paypal",
            id=capture.id,
            status=_CAPTURE_STATUS.get(capture.status, "processing"),
            raw_status=capture.status,
            amount=_money(capture.amount or fallback, None, response),
            request_id=debug_id(response),
            order_id=order_id,
            replayed=response.replayed,
        )

    def _from_authorization(
        self,
        auth: AuthorizationObject,
        response: Response,
        order_id: str | None,
        fallback: AmountObject | None,
        raise_declined: bool,
    ) -> Payment:
        if raise_declined and auth.status == "DENIED":
            raise PayPalDeclined(
                response,
                vendor="paypal",
                code="DENIED",
                message=f"authorization {auth.id} was denied",
                request_id=debug_id(response),
                decline_code=auth.status_details.reason if auth.status_details else None,
            )
        return Payment(
            vendor="paypal",
            id=auth.id,
            status=_AUTHORIZATION_STATUS.get(auth.status, "processing"),
            raw_status=auth.status,
            amount=_money(auth.amount or fallback, None, response),
            authorized_amount=_money(auth.amount or fallback, None, response),
            request_id=debug_id(response),
            order_id=order_id,
            replayed=response.replayed,
        )


def _url(value: str | None) -> str | None:
    if value is not None and (not isinstance(value, str) or not value.startswith("https://")):
        # PayPal requires https return/cancel URLs for the buyer redirect.
        raise InvalidRequest("return_url and cancel_url must be https:// URLs")
    return value


#: PayPal's 2xx bodies: an unreadable one is a `PayPalResponseError` (rule 34).
_READ: Final = ResponseReader("paypal", "PayPal", PayPalResponseError, debug_id)


def _money(obj: AmountObject | None, asked: Money | None, response: Response) -> Money:
    """The amount PayPal reported (else what was asked); an unreadable one is a vendor error.

    Read leniently (rule 34): any 3-letter currency, retired ones included.
    """
    if obj is None:
        if asked is not None:
            return asked
        raise _READ.unreadable(response, "response carries no amount")
    try:
        return from_paypal_amount({"currency_code": obj.currency_code, "value": obj.value})
    except InvalidRequest:
        raise _READ.unreadable(response, "response carries an unreadable amount") from None
