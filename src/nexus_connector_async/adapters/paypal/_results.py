"""PayPal's 2xx answers read into `Payment` and `Refund`, statuses mapped onto Stripe's names.

A DECLINED or FAILED capture and a DENIED authorization inside a 2xx raise `PayPalDeclined`
where the caller asked for money to move (rule 36); an unreadable answer or amount is a
`PayPalResponseError` (rule 34), never an `InvalidRequest`.
"""

from __future__ import annotations

from typing import Final

import msgspec

from ..._errors import InvalidRequest
from ..._models import Response
from ..._scrub import Scrubber
from .._money import Money
from .._payment_adapter import ResponseReader
from .._payments import Payment, PaymentStatus, Refund, RefundStatus
from ._errors import PayPalDeclined, PayPalResponseError, clean, debug_id
from ._models import (
    AmountObject,
    AuthorizationObject,
    CaptureObject,
    OrderObject,
    RefundObject,
    decode_order,
)
from ._money import from_paypal_amount

__all__ = ["READ", "money", "payment_from_capture", "payment_from_order", "refund_from"]

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

#: PayPal's 2xx bodies: an unreadable one is a `PayPalResponseError` (rule 34).
READ: Final = ResponseReader("paypal", "PayPal", PayPalResponseError, debug_id)


def money(obj: AmountObject | None, asked: Money | None, response: Response) -> Money:
    """The amount PayPal reported (else what was asked); an unreadable one is a vendor error.

    Read leniently (rule 34): any 3-letter currency, retired ones included.
    """
    if obj is None:
        if asked is not None:
            return asked
        raise READ.unreadable(response, "response carries no amount")
    try:
        return from_paypal_amount({"currency_code": obj.currency_code, "value": obj.value})
    except InvalidRequest:
        raise READ.unreadable(response, "response carries an unreadable amount") from None


def payment_from_order(response: Response, secrets: Scrubber, *, raise_declined: bool) -> Payment:
    """An order's latest capture or authorization, else the order itself (still to approve)."""
    order: OrderObject = READ.decode(decode_order, response)
    unit = order.purchase_units[0] if order.purchase_units else None
    payments = unit.payments if unit is not None else None
    unit_amount = unit.amount if unit is not None else None
    if payments is not None and payments.captures:
        payment = payment_from_capture(
            payments.captures[-1], response, secrets, order.id, unit_amount, raise_declined
        )
        if unit_amount is not None:
            authorized = money(unit_amount, None, response)
            payment = msgspec.structs.replace(payment, authorized_amount=authorized)
        return payment
    if payments is not None and payments.authorizations:
        return _from_authorization(
            payments.authorizations[-1], response, order.id, unit_amount, raise_declined
        )
    return Payment(
        vendor="paypal",
        id=order.id,
        status=_ORDER_STATUS.get(order.status, "processing"),
        raw_status=order.status,
        amount=money(unit_amount, None, response),
        request_id=debug_id(response),
        order_id=order.id,
        action_url=order.link("payer-action", "approve"),
        replayed=response.replayed,
    )


def payment_from_capture(
    capture: CaptureObject,
    response: Response,
    secrets: Scrubber,
    order_id: str | None = None,
    fallback: AmountObject | None = None,
    raise_declined: bool = True,
) -> Payment:
    """A capture as a `Payment`; with `raise_declined`, DECLINED and FAILED raise instead."""
    if raise_declined and capture.status in _FAILED_CAPTURES:
        # A 2xx does not prove money moved (vendor-facts 2.5): DECLINED and FAILED raise.
        reason = capture.status_details.reason if capture.status_details else None
        processor = capture.processor_response
        raise _declined(
            response,
            capture.status,
            clean(f"capture {capture.id} was {capture.status.lower()}", secrets),
            (processor.response_code if processor else None) or reason,
        )
    status = _CAPTURE_STATUS.get(capture.status, "processing")
    return _payment(capture, status, response, order_id, fallback)


def _from_authorization(
    auth: AuthorizationObject,
    response: Response,
    order_id: str | None,
    fallback: AmountObject | None,
    raise_declined: bool,
) -> Payment:
    if raise_declined and auth.status == "DENIED":
        reason = auth.status_details.reason if auth.status_details else None
        raise _declined(response, "DENIED", f"authorization {auth.id} was denied", reason)
    status = _AUTHORIZATION_STATUS.get(auth.status, "processing")
    return _payment(auth, status, response, order_id, fallback, authorized=True)


def _payment(
    obj: CaptureObject | AuthorizationObject,
    status: PaymentStatus,
    response: Response,
    order_id: str | None,
    fallback: AmountObject | None,
    *,
    authorized: bool = False,
) -> Payment:
    """A capture's or authorization's `Payment`: its amount, else the order's (`fallback`)."""
    amount = money(obj.amount or fallback, None, response)
    return Payment(
        vendor="paypal",
        id=obj.id,
        status=status,
        raw_status=obj.status,
        amount=amount,
        authorized_amount=amount if authorized else None,
        request_id=debug_id(response),
        order_id=order_id,
        replayed=response.replayed,
    )


def _declined(
    response: Response, code: str, message: str | None, decline_code: str | None
) -> PayPalDeclined:
    return PayPalDeclined(
        response,
        vendor="paypal",
        code=code,
        message=message,
        request_id=debug_id(response),
        decline_code=decline_code,
    )


def refund_from(
    refund: RefundObject, response: Response, asked: Money | None, capture_id: str
) -> Refund:
    """A refund of `capture_id` as a `Refund`; its amount, else what was `asked`."""
    return Refund(
        vendor="paypal",
        id=refund.id,
        status=_REFUND_STATUS.get(refund.status, "pending"),
        raw_status=refund.status,
        amount=money(refund.amount, asked, response),
        payment_id=capture_id,
        request_id=debug_id(response),
        replayed=response.replayed,
    )
