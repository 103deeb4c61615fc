"""`PayPalPaymentAdapter`: Orders v2 and Payments v2 over PayPal's REST API.

JSON in, JSON out. Every POST carries `PayPal-Request-Id` (the caller's key or a fresh UUID
that the pipeline reuses for its retries), `Prefer: return=representation` (so capture and
authorization ids come back) and `Content-Type: application/json`, with `{}` as the body when
there is nothing to send. The OAuth2 token is fetched and shared through the connector's
backend by `OAuth2CredentialProvider` and passed per call, so no other service sees it.
Request bodies are built in `_requests`, answers read in `_results`; this module holds the
routes and the operations.
"""

from __future__ import annotations

import functools
from typing import Any, Final

from ..._config import CircuitBreakerConfig, RateLimitConfig, RetryPolicy, Timeouts
from ..._connector import Connector
from ..._errors import ConnectorError, InvalidRequest
from ..._models import IdempotencyKey, Response
from ..._scrub import Scrubber
from ...credentials._base import CredentialProvider
from ...credentials._oauth2 import OAuth2CredentialProvider
from .._money import Money
from .._payment_adapter import PaymentAdapterBase
from .._payments import Payment, Refund, account_scope, check_id
from .._vendor import Policies, VendorClient, header_safe
from ._errors import error_from_response
from ._models import CaptureObject, RefundObject, decode_capture, decode_refund
from ._requests import (
    ORDER_ID,
    Intent,
    SourceType,
    amount_field,
    order_body,
    vaulted_source,
    wallet_source,
)
from ._results import READ, money, payment_from_capture, payment_from_order, refund_from
from ._token import ClientToken

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
            self._vendor.credentials = ClientToken(
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
        body = order_body(amount, intent, reference_id)
        if return_url is not None or cancel_url is not None:
            body["payment_source"] = wallet_source(return_url, cancel_url)
        response = await self._send(self._orders, body, idempotency_key, tenant_id)
        return payment_from_order(response, self._secrets, raise_declined=True)

    async def get_order(
        self,
        order_id: str,
        *,
        idempotency_key: IdempotencyKey | None = None,
        tenant_id: str | None = None,
    ) -> Payment:
        """The order as PayPal has it now (a DECLINED capture shows as `failed`, not raised)."""
        order_id = check_id(order_id, "order_id", ORDER_ID)
        response = await self._send(self._order, None, idempotency_key, tenant_id, order_id)
        return payment_from_order(response, self._secrets, raise_declined=False)

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
        order_id = check_id(order_id, "order_id", ORDER_ID)
        route = self._order_capture if action == "capture" else self._order_authorize
        response = await self._send(route, {}, idempotency_key, tenant_id, order_id)
        return self._remember(
            payment_from_order(response, self._secrets, raise_declined=True), tenant_id
        )

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
        body: dict[str, Any] = {
            "final_capture": final_capture,
            **amount_field(amount, "capture amount"),
        }
        if amount is not None:
            await self._check_currency("authorizations", authorization_id, amount, tenant_id)
        response = await self._send(
            self._authorization_capture, body, idempotency_key, tenant_id, authorization_id
        )
        capture = READ.decode(decode_capture, response)
        if capture.amount is None:
            capture = await self._fetch_capture(capture, amount, tenant_id)
        return self._remember(payment_from_capture(capture, response, self._secrets), tenant_id)

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
        body = amount_field(amount, "refund amount")
        if amount is not None:
            await self._check_currency("captures", capture_id, amount, tenant_id)
        response = await self._send(
            self._capture_refund, body, idempotency_key, tenant_id, capture_id
        )
        refund = READ.decode(decode_refund, response)
        if refund.amount is None and amount is None:
            # A minimal answer (id, status, links) after the refund was made: read the refund
            # back instead of failing a refund that happened.
            refund = await self._fetch_refund(refund, response, tenant_id)
        return refund_from(refund, response, amount, capture_id)

    # -- reading back -----------------------------------------------------------------------------

    async def _read_back(self, kind: str, object_id: str, tenant_id: str | None) -> Response:
        """GET /v2/payments/{kind}/{id}: an authorization, capture or refund as PayPal has it."""
        object_id = check_id(object_id, f"{kind[:-1]} id")
        return await self._send(self._lookups[kind], None, None, tenant_id, object_id)

    async def _fetch_currency(self, payment_id: str, tenant_id: str | None, kind: str) -> str:
        """The currency of an authorization or capture (`kind`), read back from PayPal."""
        response = await self._read_back(kind, payment_id, tenant_id)
        found = READ.decode(decode_capture, response)
        return money(found.amount, None, response).currency

    async def _fetch_refund(
        self, refund: RefundObject, response: Response, tenant_id: str | None
    ) -> RefundObject:
        try:
            fetched = await self._read_back("refunds", refund.id, tenant_id)
        except ConnectorError:  # InvalidRequest included (an id unsafe in a path)
            raise READ.unreadable(
                response, "the refund was made but its amount is unknown"
            ) from None
        return READ.decode(decode_refund, fetched)

    async def _fetch_capture(
        self, capture: CaptureObject, asked: Money | None, tenant_id: str | None
    ) -> CaptureObject:
        if asked is not None:
            return capture  # `money` falls back to what was asked
        try:
            fetched = await self._read_back("captures", capture.id, tenant_id)
        except ConnectorError:
            return capture  # `money` then reports the missing amount as a vendor error
        return READ.decode(decode_capture, fetched)

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
        payment_source = vaulted_source(source, payment_method)
        body = order_body(amount, intent, reference_id)
        body["payment_source"] = payment_source
        response = await self._send(self._orders, body, key, tenant_id)
        return self._remember(
            payment_from_order(response, self._secrets, raise_declined=True), tenant_id
        )
