"""The few fields of PayPal's Orders v2 / Payments v2 objects the adapter reads."""

from __future__ import annotations

import msgspec

__all__ = [
    "AmountObject",
    "AuthorizationObject",
    "CaptureObject",
    "ErrorBody",
    "OrderObject",
    "RefundObject",
    "decode_capture",
    "decode_error",
    "decode_order",
    "decode_refund",
]


class AmountObject(msgspec.Struct, frozen=True):
    """PayPal `money`: upper-case `currency_code` and a decimal-string `value`."""

    currency_code: str
    value: str


class _Link(msgspec.Struct, frozen=True):
    href: str
    rel: str


class _StatusDetails(msgspec.Struct, frozen=True):
    reason: str | None = None


class _ProcessorResponse(msgspec.Struct, frozen=True):
    response_code: str | None = None


class CaptureObject(msgspec.Struct, frozen=True):
    """A capture; `status` may be DECLINED/PENDING/FAILED even inside a 2xx."""

    id: str
    status: str
    amount: AmountObject | None = None
    status_details: _StatusDetails | None = None
    processor_response: _ProcessorResponse | None = None


class AuthorizationObject(msgspec.Struct, frozen=True):
    """An authorization: CREATED (funds held), CAPTURED, DENIED, VOIDED, PENDING..."""

    id: str
    status: str
    amount: AmountObject | None = None
    status_details: _StatusDetails | None = None


class RefundObject(msgspec.Struct, frozen=True):
    """A refund: COMPLETED, PENDING, FAILED or CANCELLED."""

    id: str
    status: str
    amount: AmountObject | None = None


class _Payments(msgspec.Struct, frozen=True):
    captures: list[CaptureObject] = []
    authorizations: list[AuthorizationObject] = []


class _PurchaseUnit(msgspec.Struct, frozen=True):
    amount: AmountObject | None = None
    payments: _Payments | None = None


class OrderObject(msgspec.Struct, frozen=True):
    """An order with its purchase units' payments and HATEOAS links."""

    id: str
    status: str
    intent: str | None = None
    purchase_units: list[_PurchaseUnit] = []
    links: list[_Link] = []

    def link(self, *rels: str) -> str | None:
        """The href of the first link with one of `rels`."""
        for link in self.links:
            if link.rel in rels:
                return link.href
        return None


class ErrorDetail(msgspec.Struct, frozen=True):
    """One entry of `details`: `issue` is the actionable code; `description` may change."""

    issue: str | None = None
    field: str | None = None
    description: str | None = None


class ErrorBody(msgspec.Struct, frozen=True):
    """Both error shapes: standard (`name`, `details`, `debug_id`) and OAuth (`error`)."""

    name: str | None = None
    message: str | None = None
    debug_id: str | None = None
    details: list[ErrorDetail] = []
    links: list[_Link] = []
    error: str | None = None
    error_description: str | None = None


decode_order = msgspec.json.Decoder(OrderObject).decode
decode_capture = msgspec.json.Decoder(CaptureObject).decode
decode_refund = msgspec.json.Decoder(RefundObject).decode
decode_error = msgspec.json.Decoder(ErrorBody).decode
