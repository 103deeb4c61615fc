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
import re
import time
from collections.abc import Mapping
from typing import Any, NamedTuple

from aiohttp import web

from ._vendor_server import SimulatedRequest, VendorServer, json_response, new_id, parse_brackets

__all__ = ["StripeSimulator"]

_SUCCEEDS = frozenset({"pm_card_visa", "pm_card_mastercard", "tok_visa", "tok_mastercard"})
_DECLINES = {
    "pm_card_chargeDeclined": "generic_decline",
    "tok_chargeDeclined": "generic_decline",
    "pm_card_chargeDeclinedInsufficientFunds": "insufficient_funds",
    "tok_chargeDeclinedInsufficientFunds": "insufficient_funds",
}
_NEEDS_3DS = frozenset({"pm_card_authenticationRequired", "pm_card_threeDSecure2Required"})
_VERSION = re.compile(r"\d{4}-\d{2}-\d{2}(\.[a-z]+)?")
_INTEGER = re.compile(r"[0-9]+")
_CURRENCY = re.compile(r"[a-z]{3}")
#: Stripe's amount steps in minor units (vendor-facts 1.9): the last digit(s) must be zero.
_STEPS = {
    **dict.fromkeys(("bhd", "jod", "kwd", "omr", "tnd"), 10),
    **dict.fromkeys(("isk", "ugx"), 100),
}
#: Stripe's minimum charge amounts (vendor-facts 1.9): minor units, and as Stripe writes them.
_MINIMUMS = {
    "usd": (50, "$0.50"),
    "eur": (50, "€0.50"),
    "gbp": (30, "£0.30"),
    "jpy": (50, "¥50"),
    "cad": (50, "$0.50"),
    "aud": (50, "$0.50"),
    "huf": (17500, "175.00 Ft"),
    "pln": (200, "2.00 zł"),
}

_PI_PARAMS = frozenset(
    {
        "amount",
        "currency",
        "payment_method",
        "confirm",
        "capture_method",
        "automatic_payment_methods",
        "payment_method_types",
        "return_url",
        "description",
        "metadata",
        "off_session",
        "error_on_requires_action",
        "customer",
        "statement_descriptor_suffix",
    }
)
_CAPTURE_PARAMS = frozenset({"amount_to_capture", "metadata", "final_capture"})
_REFUND_PARAMS = frozenset({"payment_intent", "charge", "amount", "reason", "metadata"})
_CHARGE_PARAMS = frozenset(
    {"amount", "currency", "source", "customer", "capture", "description", "metadata"}
)
_CHARGE_CAPTURE_PARAMS = frozenset({"amount"})


class _Stored(NamedTuple):
    fingerprint: str
    status: int
    body: Any
    request_id: str


class _Error(Exception):
    """An error answer in Stripe's shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        decline_code: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        error: dict[str, Any] = {"type": type, "message": message}
        optional = {"code": code, "param": param, "decline_code": decline_code}
        error.update({k: v for k, v in optional.items() if v is not None})
        error.update(extra or {})
        self.status = status
        self.body = {"error": error}


class _Invalid(_Error):
    """A request that fails validation before execution: Stripe does not store it."""


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
        self._idempotency: dict[str, _Stored] = {}
        self._in_flight: set[str] = set()
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

    # -- dispatch ----------------------------------------------------------------------------------

    async def handle(self, request: SimulatedRequest) -> web.StreamResponse:
        request_id = new_id("req_", 7)
        headers = {"Request-Id": request_id}
        try:
            self._check_auth(request)
            params = self._check_request(request)
            fault = self.take_fault()
            if fault is not None:
                return json_response(fault.status, fault.body, fault.headers)
            key = request.headers.get("Idempotency-Key") if request.method == "POST" else None
            if key is not None:
                replay = self._replay(key, request, params)
                if replay is not None:
                    return replay
                if key in self._in_flight:
                    raise _in_use()
                self._in_flight.add(key)
            try:
                return await self._execute(request, params, key, request_id)
            finally:
                if key is not None:
                    self._in_flight.discard(key)
        except _Error as exc:
            return json_response(exc.status, exc.body, headers)

    async def _execute(
        self, request: SimulatedRequest, params: dict[str, Any], key: str | None, request_id: str
    ) -> web.StreamResponse:
        """Run the request (once `hold` lets it) and store its answer under its key."""
        headers = {"Request-Id": request_id}
        await self.processing()
        try:
            status, body = self._route(request.method, request.path, params)
        except _Invalid as exc:
            return json_response(exc.status, exc.body, headers)
        except _Error as exc:
            status, body = exc.status, exc.body
        if key is not None:
            self._idempotency[key] = _Stored(
                _fingerprint(request, params), status, body, request_id
            )
        return json_response(status, body, headers)

    def _check_auth(self, request: SimulatedRequest) -> None:
        auth = request.headers.get("Authorization", "")
        scheme, _, credential = auth.partition(" ")
        if scheme == "Basic":
            try:
                credential = base64.b64decode(credential).decode().partition(":")[0]
            except ValueError:
                credential = ""
        elif scheme != "Bearer":
            raise _Error(
                401,
                "You did not provide an API key. You need to provide your API key in the "
                "Authorization header, using Bearer auth.",
            )
        if credential != self.api_key:
            raise _Error(401, f"Invalid API Key provided: {_mask(credential)}")

    def _check_request(self, request: SimulatedRequest) -> dict[str, Any]:
        version = request.headers.get("Stripe-Version")
        if version is None:
            raise _Error(400, "This simulator requires a Stripe-Version header on every request.")
        if not _VERSION.fullmatch(version):
            raise _Error(400, f"Invalid Stripe API version: {version}")
        if request.method == "GET":
            if request.body:
                raise _Error(400, "GET requests must not have a body.")
            return _parse(request.query)
        if request.method != "POST":
            raise _Error(405, f"Unrecognized request URL ({request.method}: {request.path}).")
        content_type = request.headers.get("Content-Type", "")
        if request.body and not content_type.startswith("application/x-www-form-urlencoded"):
            raise _Error(
                400,
                "Invalid request: the body must be application/x-www-form-urlencoded "
                f"(got {content_type or 'no Content-Type'}).",
            )
        key = request.headers.get("Idempotency-Key")
        if not key:
            raise _Error(400, "This simulator requires an Idempotency-Key header on every POST.")
        if len(key) > 255:
            raise _Error(400, "Idempotency keys can be at most 255 characters long.")
        return _parse(request.body.decode("utf-8", errors="strict"))

    def _replay(
        self, key: str, request: SimulatedRequest, params: dict[str, Any]
    ) -> web.Response | None:
        stored = self._idempotency.get(key)
        if stored is None:
            return None
        if stored.fingerprint != _fingerprint(request, params):
            raise _Error(
                400,
                "Keys for idempotent requests can only be used with the same parameters they "
                "were first used with. Try using a key other than "
                f"'{key}' if you meant to execute a different request.",
                type="idempotency_error",
            )
        headers = {"Request-Id": stored.request_id, "Idempotent-Replayed": "true"}
        return json_response(stored.status, stored.body, headers)

    # -- routes ------------------------------------------------------------------------------------

    def _route(self, method: str, path: str, params: dict[str, Any]) -> tuple[int, Any]:
        parts = path.strip("/").split("/")
        if method == "POST" and parts == ["v1", "payment_intents"]:
            return 200, self._create_intent(params)
        if method == "GET" and len(parts) == 3 and parts[:2] == ["v1", "payment_intents"]:
            _allowed(params, frozenset({"expand"}))
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
        raise _Error(404, f"Unrecognized request URL ({method}: {path}).")

    def _create_intent(self, params: dict[str, Any]) -> dict[str, Any]:
        _allowed(params, _PI_PARAMS)
        currency = _currency(params)
        amount = _charge_amount(params, currency)
        capture_method = params.get("capture_method", "automatic_async")
        if capture_method not in ("automatic", "automatic_async", "manual"):
            raise _Invalid(400, f"Invalid capture_method: {capture_method}", param="capture_method")
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
            "metadata": _metadata(params),
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
        if _boolean(params, "confirm"):
            self._confirm(pi, params)
        return pi

    def _confirm(self, pi: dict[str, Any], params: dict[str, Any]) -> None:
        method = pi["payment_method"]
        if method is None:
            raise _Error(
                400,
                "You cannot confirm this PaymentIntent because it's missing a payment method.",
                code="payment_intent_unexpected_state",
            )
        redirects = (params.get("automatic_payment_methods") or {}).get("allow_redirects")
        if (
            "payment_method_types" not in params
            and redirects != "never"
            and "return_url" not in params
            and not _boolean(params, "off_session")
        ):
            # API 2023-08-16+: automatic payment methods are on, so redirects are possible.
            raise _Invalid(
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
            raise _Error(
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
        raise _Error(
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
            raise _Error(
                404,
                f"No such payment_intent: '{intent_id}'",
                code="resource_missing",
                param="intent",
            )
        return pi

    def _capture_intent(self, intent_id: str, params: dict[str, Any]) -> dict[str, Any]:
        _allowed(params, _CAPTURE_PARAMS)
        pi = self._intent(intent_id)
        if pi["status"] != "requires_capture":
            raise _Error(
                400,
                "This PaymentIntent could not be captured because it has a status of "
                f"{pi['status']}. Only a PaymentIntent with one of the following statuses may "
                "be captured: requires_capture.",
                code="payment_intent_unexpected_state",
            )
        amount = (
            _amount(params, "amount_to_capture", currency=pi["currency"]) or pi["amount_capturable"]
        )
        if amount > pi["amount_capturable"]:
            raise _Error(
                400,
                "The amount to capture exceeds the capturable amount.",
                code="amount_too_large",
                param="amount_to_capture",
            )
        pi.update(status="succeeded", amount_received=amount, amount_capturable=0)
        return pi

    def _create_refund(self, params: dict[str, Any]) -> dict[str, Any]:
        _allowed(params, _REFUND_PARAMS)
        if ("payment_intent" in params) == ("charge" in params):
            raise _Invalid(400, "One of `payment_intent` or `charge` is required.")
        reason = params.get("reason")
        if reason is not None and reason not in (
            "duplicate",
            "fraudulent",
            "requested_by_customer",
        ):
            raise _Invalid(400, f"Invalid reason: {reason}", param="reason")
        if "payment_intent" in params:
            target = self._intent(params["payment_intent"])
            paid, currency = target["amount_received"], target["currency"]
        else:
            target = self._charge(params["charge"])
            paid = target["amount_captured"]
            currency = target["currency"]
        if paid == 0:
            raise _Error(400, "This payment has not been captured yet.", code="charge_not_captured")
        refunded = target.get("amount_refunded", 0)
        amount = _amount(params, "amount", currency=currency) or paid - refunded
        if amount > paid - refunded:
            raise _Error(
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
            "metadata": _metadata(params),
            "status": "succeeded",
        }
        self.refunds[refund["id"]] = refund
        return refund

    def _create_charge(self, params: dict[str, Any]) -> dict[str, Any]:
        _allowed(params, _CHARGE_PARAMS)
        currency = _currency(params)
        amount = _charge_amount(params, currency)
        source = params.get("source")
        if not isinstance(source, str):
            raise _Invalid(400, "Must provide source or customer.", param="source")
        capture = _boolean(params, "capture", default=True)
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
            "metadata": _metadata(params),
            "description": params.get("description"),
            "status": "succeeded",
        }
        self.charges[charge["id"]] = charge
        return charge

    def _charge(self, charge_id: str) -> dict[str, Any]:
        charge = self.charges.get(charge_id)
        if charge is None:
            raise _Error(404, f"No such charge: '{charge_id}'", code="resource_missing")
        return charge

    def _capture_charge(self, charge_id: str, params: dict[str, Any]) -> dict[str, Any]:
        _allowed(params, _CHARGE_CAPTURE_PARAMS)
        charge = self._charge(charge_id)
        if charge["captured"]:
            raise _Error(400, "Charge has already been captured.", code="charge_already_captured")
        amount = _amount(params, "amount", currency=charge["currency"]) or charge["amount"]
        if amount > charge["amount"]:
            raise _Error(400, "Amount exceeds the authorized amount.", code="amount_too_large")
        charge.update(captured=True, amount_captured=amount)
        return charge


# -- parameter checks ---------------------------------------------------------------------------


def _parse(text: str) -> dict[str, Any]:
    try:
        return parse_brackets(text)
    except ValueError as exc:
        raise _Invalid(400, f"Invalid request: {exc}") from None


def _fingerprint(request: SimulatedRequest, params: dict[str, Any]) -> str:
    return hashlib.sha256(repr((request.method, request.path, params)).encode()).hexdigest()


def _allowed(params: Mapping[str, Any], names: frozenset[str]) -> None:
    for name in params:
        if name not in names:
            raise _Invalid(400, f"Received unknown parameter: {name}", param=name)


def _amount(
    params: Mapping[str, Any], name: str, *, required: bool = False, currency: str = "usd"
) -> int:
    value = params.get(name)
    if value is None:
        if required:
            raise _Invalid(400, f"Missing required param: {name}.", param=name)
        return 0
    if not isinstance(value, str) or not _INTEGER.fullmatch(value):
        raise _Invalid(400, f"Invalid integer: {value}", param=name)
    amount = int(value)
    if amount < 1:
        raise _Invalid(400, "Amount must be at least 1.", code="amount_too_small", param=name)
    if amount > 99_999_999:
        raise _Invalid(400, "Amount must be no more than 99999999.", param=name)
    step = _STEPS.get(currency, 1)
    if amount % step:
        raise _Invalid(
            400,
            f"Invalid {name} for {currency}: the last {len(str(step)) - 1} digit(s) of an"
            f" amount in {currency} must be 0.",
            code="invalid_amount",
            param=name,
        )
    return amount


def _charge_amount(params: Mapping[str, Any], currency: str) -> int:
    """A charge's `amount`: valid for its currency and at least Stripe's minimum charge."""
    amount = _amount(params, "amount", required=True, currency=currency)
    minimum, shown = _MINIMUMS.get(currency, (1, ""))
    if amount < minimum:
        raise _Invalid(
            400,
            f"Amount must be at least {shown} {currency}",
            code="amount_too_small",
            param="amount",
            extra={"doc_url": "https://stripe.com/docs/error-codes/amount-too-small"},
        )
    return amount


def _in_use() -> _Error:
    """Stripe's answer to a request whose idempotency key is still being processed."""
    return _Error(
        409,
        "There is currently another in-progress request using this idempotency key (that "
        "probably means you submitted twice, and the other request is still going through)."
        " Please try again later.",
        code="idempotency_key_in_use",
        extra={"doc_url": "https://stripe.com/docs/error-codes/idempotency-key-in-use"},
    )


def _currency(params: Mapping[str, Any]) -> str:
    value = params.get("currency")
    if value is None:
        raise _Invalid(400, "Missing required param: currency.", param="currency")
    if not isinstance(value, str) or not _CURRENCY.fullmatch(value):
        # Stripe documents currencies as lower-case ISO codes; be strict about it.
        raise _Invalid(400, f"Invalid currency: {value}. Use a lower-case code.", param="currency")
    return value


def _boolean(params: Mapping[str, Any], name: str, *, default: bool = False) -> bool:
    value = params.get(name)
    if value is None:
        return default
    if value not in ("true", "false"):
        raise _Invalid(400, f"Invalid boolean: {value}", param=name)
    return bool(value == "true")


def _metadata(params: Mapping[str, Any]) -> dict[str, str]:
    value = params.get("metadata", {})
    if value == "":
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise _Invalid(400, "Invalid metadata: must be a hash of strings.", param="metadata")
    # Stripe's metadata limits: 50 keys, keys up to 40 characters, values up to 500.
    if len(value) > 50:
        raise _Invalid(400, "Metadata can have up to 50 keys.", param="metadata")
    for key, item in value.items():
        if len(key) > 40 or len(item) > 500:
            raise _Invalid(
                400,
                "Metadata keys can be up to 40 characters and values up to 500 characters.",
                param=f"metadata[{key[:40]}]",
            )
    return value


def _mask(key: str) -> str:
    return f"{key[:8]}****{key[-4:]}" if len(key) > 12 else "****"
