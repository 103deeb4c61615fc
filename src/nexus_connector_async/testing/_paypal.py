"""`PayPalSimulator`: a strict imitation of PayPal's OAuth2 token, Orders v2 and Payments v2.

Strict where a client goes wrong: every POST needs `Content-Type: application/json` (else 415,
even with an empty body) and a `PayPal-Request-Id` (at most 108 characters); API calls need a
Bearer token it issued (else 401 in the OAuth shape); amounts must be decimal strings with the
currency's decimals (none for HUF, JPY, TWD; at most two elsewhere) and an upper-case currency.

Currencies are PayPal's REST list only (vendor-facts 2.6: no KWD, no BGN) and values above
999999999999999.99 are refused (`MAX_VALUE_EXCEEDED`). `Prefer: return=minimal` (PayPal's
default when no `Prefer` is sent) answers POSTs with only `id`, `status` and `links`.

Vaulted payment sources drive outcomes: `vault_declined` gives a capture with status DECLINED
inside a 201, `vault_failed` one with status FAILED, `vault_instrument_declined` a 422
INSTRUMENT_DECLINED, `vault_payer_action` a 422 PAYER_ACTION_REQUIRED with a `payer-action`
link, `vault_pending` a PENDING capture; any other vault id succeeds. `approve(order_id)`
plays the buyer approving an order; `expire_tokens()` makes every issued token unknown;
`fail_next()` injects errors.

A request whose `PayPal-Request-Id` is still being processed (see `hold`) answers 409
RESOURCE_CONFLICT with issue `PREVIOUS_REQUEST_IN_PROGRESS` (vendor-facts 2.4, 2.5) and is not
recorded under the id, so resending it later with the same id is safe.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import msgspec

from ._paypal_rules import (
    OAuthError,
    PayPalError,
    check_amount,
    error_body,
    find_vault_id,
    fmt_value,
    json_object,
    paypal_id,
    prefer,
    public,
)
from ._vendor_server import Answer, Answered, SimulatedRequest, VendorServer, parse_brackets

__all__ = ["PayPalSimulator"]


class PayPalSimulator(VendorServer):
    """A strict local PayPal (`/v1/oauth2/token`, `/v2/checkout/orders`, `/v2/payments`).

    `token_requests` counts token requests; `orders`, `captures`, `authorizations` and
    `refunds` hold what it created, by id.
    """

    def __init__(
        self,
        client_id: str = "nexus-client-id",
        client_secret: str = "nexus-client-secret",  # noqa: S107 - a test double's default
        *,
        expires_in: int = 32400,
        **server: Any,
    ) -> None:
        super().__init__(**server)
        self.client_id = client_id
        self.client_secret = client_secret
        self.expires_in = expires_in
        self.token_requests = 0
        self.tokens: set[str] = set()
        self.orders: dict[str, dict[str, Any]] = {}
        self.captures: dict[str, dict[str, Any]] = {}
        self.authorizations: dict[str, dict[str, Any]] = {}
        self.refunds: dict[str, dict[str, Any]] = {}

    # -- hooks ----------------------------------------------------------------------------------

    def fail_next(
        self,
        status: int = 500,
        issue: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        times: int = 1,
        body: Any = None,
    ) -> None:
        """Answer the next `times` well-formed API calls with this standard error (not stored)."""
        payload = body if body is not None else error_body(status, issue)
        debug = payload.get("debug_id", secrets.token_hex(6)) if isinstance(payload, dict) else ""
        self.inject(status, payload, {"PayPal-Debug-Id": debug, **(headers or {})}, times=times)

    def approve(self, order_id: str) -> None:
        """The buyer approves the order (what PayPal's approval page does)."""
        self.orders[order_id]["status"] = "APPROVED"

    def expire_tokens(self) -> None:
        """Forget every issued token: the next API call gets an OAuth-style 401."""
        self.tokens.clear()

    # -- the pipeline steps ------------------------------------------------------------------

    def authenticate(self, request: SimulatedRequest) -> None:
        """The OAuth2 token endpoint answers here; API calls need a Bearer token it issued."""
        if request.path == "/v1/oauth2/token":
            raise Answered(self._token(request))
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme != "Bearer" or token not in self.tokens:
            raise OAuthError()

    async def parse(self, request: SimulatedRequest) -> Any:
        """The method, the JSON media type, `PayPal-Request-Id` and the JSON body."""
        return self._check_request(request)

    def replay_key(self, request: SimulatedRequest) -> tuple[str, str] | None:
        """PayPal scopes a `PayPal-Request-Id` to the path it was sent to."""
        request_id = request.headers.get("PayPal-Request-Id")
        return None if request_id is None else (request.path, request_id)

    def in_progress(self, request: SimulatedRequest) -> Answer:
        """409 RESOURCE_CONFLICT / PREVIOUS_REQUEST_IN_PROGRESS, not stored (vendor-facts 2.4)."""
        return PayPalError(
            409,
            "PREVIOUS_REQUEST_IN_PROGRESS",
            "A previous request with this PayPal-Request-Id is still being processed.",
        ).answer

    def replayed(self, answer: Answer) -> Answer:
        """A repeat returns the original's latest state; a create answers 200, not 201."""
        return answer._replace(status=200) if answer.status == 201 else answer

    def remembers(self, answer: Answer) -> bool:
        """A 5xx is not kept under its request id: resending it runs again."""
        return answer.status < 500

    async def route(self, request: SimulatedRequest, parsed: Any) -> Answer:
        """Execute the call; a business error is an answer like any other (and remembered)."""
        try:
            status, payload = self._route(request, parsed)
        except PayPalError as exc:
            return exc.answer
        return Answer(status, payload, {"PayPal-Debug-Id": secrets.token_hex(6)})

    def finish(self, request: SimulatedRequest, answer: Answer) -> Answer:
        """The body `Prefer` asks for (PayPal's default is `return=minimal`)."""
        return answer._replace(body=prefer(request, answer.status, answer.body))

    def _token(self, request: SimulatedRequest) -> Answer:
        self.token_requests += 1
        if request.method != "POST":
            return Answer(405, {"error": "invalid_request"})
        if not request.headers.get("Content-Type", "").startswith(
            "application/x-www-form-urlencoded"
        ):
            return Answer(
                400, {"error": "invalid_request", "error_description": "Content-Type must be form"}
            )
        scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
        try:
            user, _, password = base64.b64decode(credential).decode().partition(":")
        except ValueError:
            user = password = ""
        if scheme != "Basic" or (user, password) != (self.client_id, self.client_secret):
            return Answer(
                401,
                {"error": "invalid_client", "error_description": "Client Authentication failed"},
            )
        form = parse_brackets(request.body.decode())
        if form.get("grant_type") != "client_credentials":
            return Answer(
                400, {"error": "unsupported_grant_type", "error_description": "Grant Type is NULL"}
            )
        token = "A21AA" + secrets.token_urlsafe(24)
        self.tokens.add(token)
        return Answer(
            200,
            {
                "scope": "https://uri.paypal.com/services/payments/payment",
                "access_token": token,
                "token_type": "Bearer",
                "app_id": "APP-80W284485P519543T",
                "expires_in": self.expires_in,
                "nonce": secrets.token_hex(8),
            },
        )

    def _check_request(self, request: SimulatedRequest) -> Any:
        if request.method == "GET":
            return None
        if request.method != "POST":
            raise PayPalError(405, "METHOD_NOT_SUPPORTED")
        if request.headers.get("Content-Type", "").split(";")[0].strip() != "application/json":
            raise PayPalError(
                415, "UNSUPPORTED_MEDIA_TYPE", "Content-Type must be application/json"
            )
        request_id = request.headers.get("PayPal-Request-Id")
        if not request_id:
            raise PayPalError(
                400,
                "PAYPAL_REQUEST_ID_REQUIRED",
                "This simulator requires PayPal-Request-Id on every POST.",
            )
        if len(request_id) > 108:
            raise PayPalError(
                400, "INVALID_STRING_LENGTH", "PayPal-Request-Id is at most 108 characters."
            )
        try:
            return msgspec.json.decode(request.body) if request.body else None
        except (msgspec.DecodeError, UnicodeDecodeError):
            raise PayPalError(400, "MALFORMED_REQUEST_JSON") from None

    # -- routes ---------------------------------------------------------------------------------

    def _route(self, request: SimulatedRequest, body: Any) -> tuple[int, Any]:
        parts = request.path.strip("/").split("/")
        method = request.method
        if method == "POST" and parts == ["v2", "checkout", "orders"]:
            return 201, self._create_order(json_object(body))
        if parts[:3] == ["v2", "checkout", "orders"] and len(parts) >= 4:
            order = self.orders.get(parts[3])
            if order is None:
                raise PayPalError(
                    404, "INVALID_RESOURCE_ID", "Specified resource ID does not exist."
                )
            if method == "GET" and len(parts) == 4:
                return 200, order
            if method == "POST" and parts[4:] == ["capture"]:
                return 201, self._complete(order, json_object(body), "CAPTURE")
            if method == "POST" and parts[4:] == ["authorize"]:
                return 201, self._complete(order, json_object(body), "AUTHORIZE")
        if method == "GET" and len(parts) == 4 and parts[:2] == ["v2", "payments"]:
            store = {
                "authorizations": self.authorizations,
                "captures": self.captures,
                "refunds": self.refunds,
            }.get(parts[2])
            if store is not None and parts[3] in store:
                return 200, public(store[parts[3]])
            raise PayPalError(404, "INVALID_RESOURCE_ID", "Specified resource ID does not exist.")
        if (
            method == "POST"
            and parts[:3] == ["v2", "payments", "authorizations"]
            and parts[4:] == ["capture"]
        ):
            return 201, self._capture_authorization(parts[3], json_object(body))
        if (
            method == "POST"
            and parts[:3] == ["v2", "payments", "captures"]
            and parts[4:] == ["refund"]
        ):
            return 201, self._refund(parts[3], json_object(body))
        raise PayPalError(404, "INVALID_RESOURCE_ID", f"No route for {method} {request.path}")

    def _create_order(self, body: dict[str, Any]) -> dict[str, Any]:
        intent = body.get("intent")
        if intent not in ("CAPTURE", "AUTHORIZE"):
            raise PayPalError(
                400, "INVALID_PARAMETER_VALUE", "intent must be CAPTURE or AUTHORIZE", "/intent"
            )
        units = body.get("purchase_units")
        if not isinstance(units, list) or not 1 <= len(units) <= 10:
            raise PayPalError(
                400, "MISSING_REQUIRED_PARAMETER", "purchase_units", "/purchase_units"
            )
        out_units = []
        for i, unit in enumerate(units):
            amount = check_amount(
                unit.get("amount") if isinstance(unit, dict) else None,
                f"/purchase_units/{i}/amount",
            )
            out_units.append(
                {"reference_id": unit.get("reference_id", "default"), "amount": amount}
            )
        if len({u["amount"]["currency_code"] for u in out_units}) > 1:
            raise PayPalError(422, "MULTI_CURRENCY_ORDER", "All units must share one currency.")
        if len(out_units) > 1 and len({u["reference_id"] for u in out_units}) < len(out_units):
            raise PayPalError(
                422, "DUPLICATE_REFERENCE_ID", "reference_id must be unique per unit."
            )
        order_id = paypal_id()
        order: dict[str, Any] = {
            "id": order_id,
            "intent": intent,
            "status": "CREATED",
            "purchase_units": out_units,
            "create_time": "2026-01-01T00:00:00Z",
            "links": [
                {
                    "href": f"{self.url}/v2/checkout/orders/{order_id}",
                    "rel": "self",
                    "method": "GET",
                },
                {
                    "href": f"https://www.sandbox.paypal.com/checkoutnow?token={order_id}",
                    "rel": "approve",
                    "method": "GET",
                },
            ],
        }
        self.orders[order_id] = order
        source = body.get("payment_source")
        if isinstance(source, dict):
            vault_id = find_vault_id(source)
            if vault_id is not None:
                order["status"] = "APPROVED"
                self._complete(order, {}, intent, vault_id)
            elif isinstance(source.get("paypal"), dict):
                order["status"] = "PAYER_ACTION_REQUIRED"
                order["links"][1] = {
                    "href": f"https://www.sandbox.paypal.com/checkoutnow?token={order_id}",
                    "rel": "payer-action",
                    "method": "GET",
                }
        return order

    def _complete(
        self, order: dict[str, Any], body: dict[str, Any], action: str, vault_id: str | None = None
    ) -> dict[str, Any]:
        if order["intent"] != action:
            raise PayPalError(422, "ACTION_DOES_NOT_MATCH_INTENT")
        if order["status"] == "COMPLETED":
            raise PayPalError(
                422, "ORDER_ALREADY_CAPTURED" if action == "CAPTURE" else "ORDER_ALREADY_AUTHORIZED"
            )
        if order["status"] != "APPROVED":
            raise PayPalError(
                422, "ORDER_NOT_APPROVED", "Payer has not yet approved the Order for payment."
            )
        if vault_id == "vault_instrument_declined":
            raise PayPalError(422, "INSTRUMENT_DECLINED", "The instrument presented was declined.")
        if vault_id == "vault_payer_action":
            raise PayPalError(
                422,
                "PAYER_ACTION_REQUIRED",
                "The payer must complete an action (3-D Secure) before the payment.",
                links=[
                    {
                        "href": f"https://www.sandbox.paypal.com/checkoutnow?token={order['id']}",
                        "rel": "payer-action",
                        "method": "GET",
                    }
                ],
            )
        unit = order["purchase_units"][0]
        if action == "CAPTURE":
            status, details = "COMPLETED", None
            if vault_id == "vault_declined":
                status = "DECLINED"
            elif vault_id == "vault_failed":
                status = "FAILED"
            elif vault_id == "vault_pending":
                status, details = "PENDING", {"reason": "PENDING_REVIEW"}
            capture = self._new_capture(unit["amount"], status, details, final_capture=True)
            unit["payments"] = {"captures": [capture]}
        else:
            auth: dict[str, Any] = {
                "id": paypal_id(),
                "status": "CREATED",
                "amount": dict(unit["amount"]),
                "captured": Decimal(0),
            }
            self.authorizations[auth["id"]] = auth
            unit["payments"] = {"authorizations": [public(auth)]}
        order["status"] = "COMPLETED"
        return order

    def _new_capture(
        self, amount: dict[str, str], status: str, details: Any, *, final_capture: bool
    ) -> dict[str, Any]:
        capture: dict[str, Any] = {
            "id": paypal_id(),
            "status": status,
            "amount": dict(amount),
            "final_capture": final_capture,
            "refunded": Decimal(0),
        }
        if details is not None:
            capture["status_details"] = details
        if status in ("DECLINED", "FAILED"):
            capture["processor_response"] = {"response_code": "0500"}
        self.captures[capture["id"]] = capture
        return public(capture)

    def _capture_authorization(self, auth_id: str, body: dict[str, Any]) -> dict[str, Any]:
        auth = self.authorizations.get(auth_id)
        if auth is None:
            raise PayPalError(404, "INVALID_RESOURCE_ID")
        if auth["status"] not in ("CREATED", "PARTIALLY_CAPTURED"):
            raise PayPalError(422, "AUTHORIZATION_ALREADY_CAPTURED")
        final = body.get("final_capture", False)
        if not isinstance(final, bool):
            raise PayPalError(400, "INVALID_PARAMETER_SYNTAX", field="/final_capture")
        mismatch, exceeded = "AUTH_CAPTURE_CURRENCY_MISMATCH", "MAX_CAPTURE_AMOUNT_EXCEEDED"
        amount, all_of_it = _take(auth, "captured", body, mismatch, exceeded)
        auth["status"] = "CAPTURED" if final or all_of_it else "PARTIALLY_CAPTURED"
        return self._new_capture(amount, "COMPLETED", None, final_capture=final)

    def _refund(self, capture_id: str, body: dict[str, Any]) -> dict[str, Any]:
        capture = self.captures.get(capture_id)
        if capture is None:
            raise PayPalError(404, "INVALID_RESOURCE_ID")
        if capture["status"] not in ("COMPLETED", "PARTIALLY_REFUNDED"):
            raise PayPalError(
                422,
                "CAPTURE_FULLY_REFUNDED"
                if capture["status"] == "REFUNDED"
                else "REFUND_NOT_ALLOWED",
            )
        mismatch, exceeded = "REFUND_CAPTURE_CURRENCY_MISMATCH", "REFUND_AMOUNT_EXCEEDED"
        amount, all_of_it = _take(capture, "refunded", body, mismatch, exceeded)
        capture["status"] = "REFUNDED" if all_of_it else "PARTIALLY_REFUNDED"
        refund: dict[str, Any] = {"id": paypal_id(), "status": "COMPLETED", "amount": amount}
        self.refunds[refund["id"]] = refund
        return refund


def _take(
    target: dict[str, Any], taken: str, body: dict[str, Any], mismatch: str, exceeded: str
) -> tuple[dict[str, str], bool]:
    """Capture or refund part of `target` (what is left when `body` names no amount): adds it
    to `target[taken]` and says whether all of it is now taken."""
    code = target["amount"]["currency_code"]
    whole = Decimal(target["amount"]["value"])
    left = whole - target[taken]
    amount = (
        check_amount(body["amount"], "/amount")
        if "amount" in body
        else {"currency_code": code, "value": fmt_value(left, code)}
    )
    if amount["currency_code"] != code:
        raise PayPalError(422, mismatch)
    if Decimal(amount["value"]) > left:
        raise PayPalError(422, exceeded)
    target[taken] += Decimal(amount["value"])
    return amount, target[taken] == whole
