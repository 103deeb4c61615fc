"""The few fields of Stripe's objects the adapter reads, decoded by decoders built once."""

from __future__ import annotations

import msgspec

__all__ = [
    "ChargeObject",
    "ErrorBody",
    "PaymentIntentObject",
    "RefundObject",
    "decode_charge",
    "decode_error",
    "decode_payment_intent",
    "decode_refund",
]


class _RedirectToUrl(msgspec.Struct, frozen=True):
    url: str | None = None


class _NextAction(msgspec.Struct, frozen=True):
    type: str | None = None
    redirect_to_url: _RedirectToUrl | None = None


class PaymentIntentObject(msgspec.Struct, frozen=True):
    """`payment_intent`: id, amounts (minor units), lower-case currency and status.

    `amount` is what was asked (authorized); `amount_received` what was collected (the captured
    amount after a partial capture); `client_secret` is what Stripe.js needs for `next_action`.
    """

    id: str
    amount: int
    currency: str
    status: str
    amount_received: int | None = None
    amount_capturable: int | None = None
    client_secret: str | None = None
    next_action: _NextAction | None = None


class _Outcome(msgspec.Struct, frozen=True):
    reason: str | None = None


class ChargeObject(msgspec.Struct, frozen=True):
    """Legacy `charge`: `status` is succeeded|pending|failed; `captured` tells auth from paid."""

    id: str
    amount: int
    currency: str
    status: str
    captured: bool = False
    refunded: bool = False
    amount_captured: int | None = None
    failure_code: str | None = None
    failure_message: str | None = None
    outcome: _Outcome | None = None


class RefundObject(msgspec.Struct, frozen=True):
    """`refund`: status pending|requires_action|succeeded|failed|canceled."""

    id: str
    amount: int
    currency: str
    status: str | None = None
    payment_intent: str | None = None
    charge: str | None = None


class _ErrorIntent(msgspec.Struct, frozen=True):
    id: str | None = None
    status: str | None = None


class _ErrorCharge(msgspec.Struct, frozen=True):
    id: str | None = None


class ErrorObject(msgspec.Struct, frozen=True):
    """`error` in Stripe's error body (all optional: Stripe adds fields over time).

    `payment_intent` is the whole PaymentIntent on a 402; `charge` the charge id.
    """

    type: str | None = None
    payment_intent: _ErrorIntent | str | None = None
    charge: _ErrorCharge | str | None = None
    advice_code: str | None = None
    network_decline_code: str | None = None
    code: str | None = None
    decline_code: str | None = None
    message: str | None = None
    param: str | None = None
    doc_url: str | None = None


class ErrorBody(msgspec.Struct, frozen=True):
    """`{"error": {...}}`; OAuth endpoints send `{"error": "<code>"}`, read as `oauth_error`."""

    error: ErrorObject | str | None = None
    error_description: str | None = None


decode_payment_intent = msgspec.json.Decoder(PaymentIntentObject).decode
decode_charge = msgspec.json.Decoder(ChargeObject).decode
decode_refund = msgspec.json.Decoder(RefundObject).decode
decode_error = msgspec.json.Decoder(ErrorBody).decode
