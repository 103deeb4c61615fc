"""`StripeSimulator`: a strict imitation of the parts of Stripe's v1 API the adapter uses.

Stricter than Stripe where the adapter must be careful: it rejects a missing `Stripe-Version`,
a POST without `Idempotency-Key` or without a form body, unknown parameters, non-integer
amounts and upper-case currencies. Stripe's test payment methods drive the outcome:

- `pm_card_visa`, `pm_card_mastercard`, `tok_visa`, `tok_mastercard`: succeed;
- `pm_card_chargeDeclined`, `tok_chargeDeclined`: 402 `card_declined` / `generic_decline`;
- `pm_card_chargeDeclinedInsufficientFunds`, `tok_chargeDeclinedInsufficientFunds`:
  402 `card_declined` / `insufficient_funds`;
- `pm_card_authenticationRequired`: `requires_action`; with a `return_url` the next action is a
  3-D Secure `redirect_to_url`, without one `use_stripe_sdk` (Stripe.js finishes it with the
  PaymentIntent's `client_secret`), as Stripe answers.

Amounts follow Stripe's currency rules (vendor-facts 1.9): three-decimal currencies (BHD, JOD,
KWD, OMR, TND) must end in 0, ISK and UGX in 00, and a charge (PaymentIntent or Charge) below
Stripe's minimum for its currency is refused with 400 `amount_too_small` (0.50 USD/EUR/CAD/AUD,
0.30 GBP, 50 JPY, 175.00 HUF, 2.00 PLN; other currencies are not checked: their minimum depends
on the account's settlement currency). A request that fails validation is not stored under its
idempotency key (Stripe stores only requests whose execution started), so the same key can be
used again once the request is fixed. A request whose key is still being processed (see
`hold`) answers 409 `idempotency_key_in_use`, not stored either: retrying later is safe.

Faults: `fail_next()` answers before the idempotency layer (like a proxy's 503 or Stripe's
429), `decline_next()` declines the next confirmation like a real card failure (stored for its
idempotency key, as Stripe does).
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Mapping
from typing import Any

from ._stripe_params import (
    CAPTURE_PARAMS,
    CHARGE_CAPTURE_PARAMS,
    CHARGE_PARAMS,
    PI_PARAMS,
    REFUND_PARAMS,
    Invalid,
    StripeError,
    check_allowed,
    check_amount,
    check_boolean,
    check_charge_amount,
    check_currency,
    check_metadata,
    check_request,
    in_use,
    mask,
)
from ._vendor_server import Answer, SimulatedRequest, VendorServer, new_id

__all__ = ["StripeSimulator"]

_SUCCEEDS = frozenset({"pm_card_visa", "pm_card_mastercard", "tok_visa", "tok_mastercard"})
_DECLINES = {
    "pm_card_chargeDeclined": "generic_decline",
    "tok_chargeDeclined": "generic_decline",
    "pm_card_chargeDeclinedInsufficientFunds": "insufficient_funds",
    "tok_chargeDeclinedInsufficientFunds": "insufficient_funds",
}
_NEEDS_3DS = frozenset({"pm_card_authenticationRequired", "pm_card_threeDSecure2Required"})


class StripeSimulator(VendorServer):
    """A strict local Stripe (`/v1/payment_intents`, `/v1/refunds`, `/v1/charges`).

    `api_key` is the only key accepted (Bearer, or Basic with the key as user name).
    `payment_intents`, `charges` and `refunds` hold the objects it created, by id.
    """

    def __init__(self, api_key: str = "sk_test_nexus_simulator", **server: Any) -> None:
        super().__init__(**server)
        self.api_key = api_key
        self.payment_intents: dict[str, dict[str, Any]] = {}
        self.charges: dict[str, dict[str, Any]] = {}
        self.refunds: dict[str, dict[str, Any]] = {}
        self._declines: list[tuple[str, str]] = []

    # -- hooks --------------------------------------------------------------------------------

    def fail_next(
        self,
        status: int = 500,
        *,
        type: str = "api_error",
        code: str | None = None,
        message: str = "Simulated failure",
        should_retry: bool | None = None,
        headers: Mapping[str, str] | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next `times` well-formed requests with this error (nothing is stored)."""
        extra = dict(headers or {})
        extra.setdefault("Request-Id", new_id("req_", 7))
        if should_retry is not None:
            extra["Stripe-Should-Retry"] = "true" if should_retry else "false"
        error: dict[str, Any] = {"type": type, "message": message}
        if code is not None:
            error["code"] = code
        self.inject(status, {"error": error}, extra, times=times)

    def rate_limit_next(self, times: int = 1, *, should_retry: bool | None = None) -> None:
        """Answer the next `times` requests with 429 `rate_limit`."""
        self.fail_next(
            429,
            type="invalid_request_error",
            code="rate_limit",
            message="Too many requests hit the API too quickly.",
            should_retry=should_retry,
            times=times,
        )

    def decline_next(
        self, code: str = "card_declined", decline_code: str = "generic_decline"
    ) -> None:
        """Decline the next confirmation or charge whatever its payment method."""
        self._declines.append((code, decline_code))

    # -- the pipeline steps ------------------------------------------------------------------

    async def parse(self, request: SimulatedRequest) -> dict[str, Any]:
        """The version header, the method, the form body and the idempotency key."""
        return check_request(request)

    def replay_key(self, request: SimulatedRequest) -> str | None:
        """Stripe keys POSTs only."""
        return request.headers.get("Idempotency-Key") if request.method == "POST" else None

    def fingerprint(self, request: SimulatedRequest, parsed: Any) -> str:
        """A key reused with another method, path or parameters is refused."""
        return hashlib.sha256(repr((request.method, request.path, parsed)).encode()).hexdigest()

    def key_reused(self, request: SimulatedRequest) -> Answer:
        """Stripe's `idempotency_error`."""
        key = request.headers.get("Idempotency-Key")
        return StripeError(
            400,
            "Keys for idempotent requests can only be used with the same parameters they "
            "were first used with. Try using a key other than "
            f"'{key}' if you meant to execute a different request.",
            type="idempotency_error",
        ).answer

    def in_progress(self, request: SimulatedRequest) -> Answer:
        """409 `idempotency_key_in_use`, not stored: retrying later is safe."""
        return in_use().answer

    def replayed(self, answer: Answer) -> Answer:
        """The first answer again, with its `Request-Id` and `Idempotent-Replayed`."""
        return answer._replace(headers={**answer.headers, "Idempotent-Replayed": "true"})

    async def route(self, request: SimulatedRequest, parsed: Any) -> Answer:
        """Execute the request; an `Invalid` one is refused without being stored."""
        headers = {"Request-Id": new_id("req_", 7)}
        try:
            status, body = self._route(request.method, request.path, parsed)
        except Invalid:
            raise
        except StripeError as exc:
            status, body = exc.answer.status, exc.answer.body
        return Answer(status, body, headers)

    def authenticate(self, request: SimulatedRequest) -> None:
        """The API key, as Bearer or as the Basic user name."""
        auth = request.headers.get("Authorization", "")
        scheme, _, credential = auth.partition(" ")
        if scheme == "Basic":
            try:
                credential = base64.b64decode(credential).decode().partition(":")[0]
            except ValueError:
                credential = ""
        elif scheme != "Bearer":
            raise StripeError(
                401,
                "You did not provide an API key. You need to provide your API key in the "
                "Authorization header, using Bearer auth.",
            )
        if credential != self.api_key:
            raise StripeError(401, f"Invalid API Key provided: {mask(credential)}")

    # -- routes ------------------------------------------------------------------------------------

    def _route(self, method: str, path: str, params: dict[str, Any]) -> tuple[int, Any]:
        parts = path.strip("/").split("/")
        if method == "POST" and parts == ["v1", "payment_intents"]:
            return 200, self._create_intent(params)
        if method == "GET" and len(parts) == 3 and parts[:2] == ["v1", "payment_intents"]:
            check_allowed(params, frozenset({"expand"}))
            return 200, self._intent(parts[2])
        if method == "POST" and parts[:2] == ["v1", "payment_intents"] and parts[3:] == ["capture"]:
            return 200, self._capture_intent(parts[2], params)
        if method == "POST" and parts == ["v1", "refunds"]:
            return 200, self._create_refund(params)
        if method == "POST" and parts == ["v1", "charges"]:
            return 200, self._create_charge(params)
        if method == "GET" and len(parts) == 3 and parts[:2] == ["v1", "charges"]:
            return 200, self._charge(parts[2])
        if method == "POST" and parts[:2] == ["v1", "charges"] and parts[3:] == ["capture"]:
            return 200, self._capture_charge(parts[2], params)
        raise StripeError(404, f"Unrecognized request URL ({method}: {path}).")

    def _create_intent(self, params: dict[str, Any]) -> dict[str, Any]:
        check_allowed(params, PI_PARAMS)
        currency = check_currency(params)
        amount = check_charge_amount(params, currency)
        capture_method = params.get("capture_method", "automatic_async")
        if capture_method not in ("automatic", "automatic_async", "manual"):
            raise Invalid(400, f"Invalid capture_method: {capture_method}", param="capture_method")
        intent_id = new_id("pi_")
        pi: dict[str, Any] = {
            "id": intent_id,
            "client_secret": f"{intent_id}_secret_{new_id('', 24)}",
            "object": "payment_intent",
            "amount": amount,
            "amount_capturable": 0,
            "amount_received": 0,
            "currency": currency,
            "capture_method": capture_method,
            "confirmation_method": "automatic",
            "created": int(time.time()),
            "livemode": False,
            "metadata": check_metadata(params),
            "description": params.get("description"),
            "payment_method": params.get("payment_method"),
            "payment_method_types": params.get("payment_method_types", ["card"]),
            "next_action": None,
            "latest_charge": None,
            "status": "requires_payment_method",
        }
        if pi["payment_method"] is not None:
            pi["status"] = "requires_confirmation"
        self.payment_intents[pi["id"]] = pi
        if check_boolean(params, "confirm"):
            self._confirm(pi, params)
        return pi

    def _confirm(self, pi: dict[str, Any], params: dict[str, Any]) -> None:
        method = pi["payment_method"]
        if method is None:
            raise StripeError(
                400,
                "You cannot confirm this PaymentIntent because it's missing a payment method.",
                code="payment_intent_unexpected_state",
            )
        redirects = (params.get("automatic_payment_methods") or {}).get("allow_redirects")
        if (
            "payment_method_types" not in params
            and redirects != "never"
            and "return_url" not in params
            and not check_boolean(params, "off_session")
        ):
            # API 2023-08-16+: automatic payment methods are on, so redirects are possible.
            raise Invalid(
                400,
                "This PaymentIntent is configured to accept payment methods enabled in your "
                "Dashboard, some of which may require a full page redirect. Provide a "
                "return_url, or set automatic_payment_methods[allow_redirects]=never.",
                param="return_url",
            )
        self._charge_outcome(method, {"payment_intent": pi})
        if method in _NEEDS_3DS:
            pi["status"] = "requires_action"
            if "return_url" in params:
                pi["next_action"] = {
                    "type": "redirect_to_url",
                    "redirect_to_url": {
                        "url": f"https://hooks.stripe.com/3d_secure_2/hosted?pi={pi['id']}",
                        "return_url": params["return_url"],
                    },
                }
            else:
                # No return_url: Stripe.js must handle the challenge in the page.
                pi["next_action"] = {
                    "type": "use_stripe_sdk",
                    "use_stripe_sdk": {"type": "three_d_secure_redirect", "source": new_id("src_")},
                }
            return
        pi["latest_charge"] = new_id("ch_")
        if pi["capture_method"] == "manual":
            pi["status"] = "requires_capture"
            pi["amount_capturable"] = pi["amount"]
        else:
            pi["status"] = "succeeded"
            pi["amount_received"] = pi["amount"]

    def _charge_outcome(self, method: str, extra: dict[str, Any]) -> None:
        """Raise the 402 a declining payment method (or `decline_next`) produces."""
        decline: tuple[str, str] | None = None
        if self._declines:
            decline = self._declines.pop(0)
        elif method in _DECLINES:
            decline = ("card_declined", _DECLINES[method])
        elif method not in _SUCCEEDS and method not in _NEEDS_3DS:
            raise StripeError(
                400, f"No such PaymentMethod: '{method}'", code="resource_missing", param="source"
            )
        if decline is None:
            return
        pi = extra.get("payment_intent")
        if pi is not None:
            pi["status"] = "requires_payment_method"
        # Stripe attaches the failed charge and, for card networks that give one, advice.
        advice = "try_again_later" if decline[1] == "insufficient_funds" else "do_not_try_again"
        extra = {**extra, "charge": new_id("ch_"), "advice_code": advice}
        raise StripeError(
            402,
            "Your card was declined.",
            type="card_error",
            code=decline[0],
            decline_code=decline[1],
            extra=extra,
        )

    def _intent(self, intent_id: str) -> dict[str, Any]:
        pi = self.payment_intents.get(intent_id)
        if pi is None:
            raise StripeError(
                404,
                f"No such payment_intent: '{intent_id}'",
                code="resource_missing",
                param="intent",
            )
        return pi

    def _capture_intent(self, intent_id: str, params: dict[str, Any]) -> dict[str, Any]:
        check_allowed(params, CAPTURE_PARAMS)
        pi = self._intent(intent_id)
        if pi["status"] != "requires_capture":
            raise StripeError(
                400,
                "This PaymentIntent could not be captured because it has a status of "
                f"{pi['status']}. Only a PaymentIntent with one of the following statuses may "
                "be captured: requires_capture.",
                code="payment_intent_unexpected_state",
            )
        amount = (
            check_amount(params, "amount_to_capture", currency=pi["currency"])
            or pi["amount_capturable"]
        )
        if amount > pi["amount_capturable"]:
            raise StripeError(
                400,
                "The amount to capture exceeds the capturable amount.",
                code="amount_too_large",
                param="amount_to_capture",
            )
        pi.update(status="succeeded", amount_received=amount, amount_capturable=0)
        return pi

    def _create_refund(self, params: dict[str, Any]) -> dict[str, Any]:
        check_allowed(params, REFUND_PARAMS)
        if ("payment_intent" in params) == ("charge" in params):
            raise Invalid(400, "One of `payment_intent` or `charge` is required.")
        reason = params.get("reason")
        if reason is not None and reason not in (
            "duplicate",
            "fraudulent",
            "requested_by_customer",
        ):
            raise Invalid(400, f"Invalid reason: {reason}", param="reason")
        if "payment_intent" in params:
            target = self._intent(params["payment_intent"])
            paid, currency = target["amount_received"], target["currency"]
        else:
            target = self._charge(params["charge"])
            paid = target["amount_captured"]
            currency = target["currency"]
        if paid == 0:
            raise StripeError(
                400, "This payment has not been captured yet.", code="charge_not_captured"
            )
        refunded = target.get("amount_refunded", 0)
        amount = check_amount(params, "amount", currency=currency) or paid - refunded
        if amount > paid - refunded:
            raise StripeError(
                400,
                "Refund amount is greater than the unrefunded amount.",
                code="amount_too_large",
                param="amount",
            )
        target["amount_refunded"] = refunded + amount
        refund: dict[str, Any] = {
            "id": new_id("re_"),
            "object": "refund",
            "amount": amount,
            "currency": currency,
            "created": int(time.time()),
            "payment_intent": params.get("payment_intent"),
            "charge": params.get("charge"),
            "reason": reason,
            "metadata": check_metadata(params),
            "status": "succeeded",
        }
        self.refunds[refund["id"]] = refund
        return refund

    def _create_charge(self, params: dict[str, Any]) -> dict[str, Any]:
        check_allowed(params, CHARGE_PARAMS)
        currency = check_currency(params)
        amount = check_charge_amount(params, currency)
        source = params.get("source")
        if not isinstance(source, str):
            raise Invalid(400, "Must provide source or customer.", param="source")
        capture = check_boolean(params, "capture", default=True)
        self._charge_outcome(source, {})
        charge: dict[str, Any] = {
            "id": new_id("ch_"),
            "object": "charge",
            "amount": amount,
            "amount_captured": amount if capture else 0,
            "amount_refunded": 0,
            "currency": currency,
            "captured": capture,
            "paid": True,
            "refunded": False,
            "disputed": False,
            "livemode": False,
            "created": int(time.time()),
            "billing_details": {},
            "metadata": check_metadata(params),
            "description": params.get("description"),
            "status": "succeeded",
        }
        self.charges[charge["id"]] = charge
        return charge

    def _charge(self, charge_id: str) -> dict[str, Any]:
        charge = self.charges.get(charge_id)
        if charge is None:
            raise StripeError(404, f"No such charge: '{charge_id}'", code="resource_missing")
        return charge

    def _capture_charge(self, charge_id: str, params: dict[str, Any]) -> dict[str, Any]:
        check_allowed(params, CHARGE_CAPTURE_PARAMS)
        charge = self._charge(charge_id)
        if charge["captured"]:
            raise StripeError(
                400, "Charge has already been captured.", code="charge_already_captured"
            )
        amount = check_amount(params, "amount", currency=charge["currency"]) or charge["amount"]
        if amount > charge["amount"]:
            raise StripeError(400, "Amount exceeds the authorized amount.", code="amount_too_large")
        charge.update(captured=True, amount_captured=amount)
        return charge
