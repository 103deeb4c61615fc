"""Stripe's 2xx answers read into `Payment` and `Refund` (PaymentIntents, Charges, Refunds).

Amounts are read leniently (rule 34): an unreadable body or amount is a `StripeResponseError`,
never an `InvalidRequest`; a failed charge inside a 2xx can raise `StripeCardError` (rule 36).
"""

from __future__ import annotations

from typing import Final, cast, get_args

from ..._errors import InvalidRequest
from ..._models import Response
from .._money import Money
from .._payment_adapter import ResponseReader
from .._payments import Payment, PaymentStatus, Refund, RefundStatus
from ._errors import StripeCardError, StripeResponseError
from ._models import (
    ChargeObject,
    PaymentIntentObject,
    decode_charge,
    decode_payment_intent,
    decode_refund,
)
from ._money import from_stripe_minor

__all__ = ["payment_from_charge", "payment_from_intent", "refund_from"]

#: What a PaymentIntent's status can be: our vocabulary is Stripe's, less the Charge-only ones.
_PI_STATUSES: Final = frozenset(get_args(PaymentStatus)) - {"failed", "refunded"}
_REFUND_STATUSES: Final = frozenset(get_args(RefundStatus))


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


def _worth(
    response: Response, currency: str, authorized: int, collected: int | None
) -> tuple[Money, Money]:
    """What a payment is worth now and what was authorized (rule 35).

    After a (partial) capture Stripe keeps the asked amount and reports what it collected
    apart: that is what the payment is worth; before, the authorized amount.
    """
    held = _read_money(authorized, currency, response)
    return (_read_money(collected, currency, response) if collected else held), held


def payment_from_intent(response: Response) -> Payment:
    """A PaymentIntent as a `Payment` (`requires_action` is returned, not raised)."""
    pi: PaymentIntentObject = _decode(decode_payment_intent, response)
    status = cast("PaymentStatus", pi.status if pi.status in _PI_STATUSES else "processing")
    action = pi.next_action
    url = action.redirect_to_url.url if action and action.redirect_to_url else None
    collected = pi.amount_received if status == "succeeded" else None
    amount, authorized = _worth(response, pi.currency, pi.amount, collected)
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


def payment_from_charge(response: Response, *, raise_failed: bool = False) -> Payment:
    """A legacy Charge as a `Payment`; with `raise_failed`, a failed one is a decline."""
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
    collected = ch.amount_captured if ch.captured else None
    amount, authorized = _worth(response, ch.currency, ch.amount, collected)
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


def refund_from(response: Response) -> Refund:
    """A Refund as a `Refund`; a status Stripe adds later reads as `pending`."""
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
