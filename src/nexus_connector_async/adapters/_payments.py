"""What every payment adapter returns and the `PaymentGateway` protocol both adapters satisfy."""

from __future__ import annotations

import hashlib
import re
import uuid
from typing import Any, Literal, Protocol, runtime_checkable

import msgspec

from .._errors import InvalidRequest
from .._models import FinalKey, IdempotencyKey, ScopedKey
from ._money import Money

__all__ = ["Payment", "PaymentGateway", "PaymentStatus", "Refund", "RefundStatus"]

#: A payment's state in Stripe's vocabulary, which PayPal's statuses are mapped onto.
PaymentStatus = Literal[
    "requires_payment_method",
    "requires_confirmation",
    "requires_action",
    "processing",
    "requires_capture",
    "canceled",
    "succeeded",
    "failed",
    "refunded",
]
RefundStatus = Literal["pending", "requires_action", "succeeded", "failed", "canceled"]


class Payment(msgspec.Struct, frozen=True, kw_only=True):
    """A payment as the vendor last reported it.

    `status` is normalised (Stripe's names); `raw_status` is the vendor's own string. `id` is
    what `capture` / `refund` take next: a Stripe PaymentIntent or Charge id, a PayPal capture
    or authorization id (`order_id` names the PayPal order). `action_url` is where the buyer
    must go when `requires_action` (3-D Secure redirect, PayPal approval link).

    `amount` is what the payment is worth now: the captured amount once captured (a partial
    capture of 60 of 100 is 60), else the authorized or asked amount. `authorized_amount` is
    what was authorized, when the vendor says so. For a Stripe `requires_action` result,
    `next_action` is Stripe's `next_action.type` (`use_stripe_sdk`, `redirect_to_url`...) and
    `client_secret` is what Stripe.js needs to finish it; it is masked in the repr.
    """

    vendor: str
    id: str
    status: PaymentStatus
    raw_status: str
    amount: Money
    request_id: str | None = None
    order_id: str | None = None
    action_url: str | None = None
    replayed: bool = False
    authorized_amount: Money | None = None
    client_secret: str | None = None
    next_action: str | None = None

    def __rich_repr__(self) -> list[tuple[str, Any]]:
        return [
            (name, "***" if name == "client_secret" and value else value)
            for name in self.__struct_fields__
            for value in (getattr(self, name),)
        ]

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={value!r}" for name, value in self.__rich_repr__())
        return f"Payment({fields})"

    @property
    def succeeded(self) -> bool:
        """True only when the money was collected (not merely authorized or pending)."""
        return self.status == "succeeded"

    @property
    def requires_action(self) -> bool:
        """True when the buyer must act (3-D Secure, approval) before anything is paid."""
        return self.status == "requires_action"

    @property
    def requires_capture(self) -> bool:
        """True when funds are held and wait for `capture`."""
        return self.status == "requires_capture"

    @property
    def pending(self) -> bool:
        """True while the vendor is still processing (Stripe `processing`, PayPal `PENDING`)."""
        return self.status == "processing"


class Refund(msgspec.Struct, frozen=True, kw_only=True):
    """A refund as the vendor reported it; `payment_id` is what was refunded."""

    vendor: str
    id: str
    status: RefundStatus
    raw_status: str
    amount: Money
    payment_id: str | None = None
    request_id: str | None = None
    replayed: bool = False

    @property
    def succeeded(self) -> bool:
        """True once the refund completed."""
        return self.status == "succeeded"


@runtime_checkable
class PaymentGateway(Protocol):
    """The operations every payment adapter offers, so application code can swap vendors."""

    async def charge(
        self,
        amount: Money,
        payment_method: str,
        *,
        idempotency_key: IdempotencyKey | None = None,
        tenant_id: str | None = None,
    ) -> Payment:
        """Collect `amount` from a saved payment method in one step."""
        ...

    async def authorize(
        self,
        amount: Money,
        payment_method: str,
        *,
        idempotency_key: IdempotencyKey | None = None,
        tenant_id: str | None = None,
    ) -> Payment:
        """Hold `amount` on a saved payment method, to be captured later."""
        ...

    async def capture(
        self,
        payment_id: str,
        amount: Money | None = None,
        *,
        idempotency_key: IdempotencyKey | None = None,
        tenant_id: str | None = None,
    ) -> Payment:
        """Collect all (or `amount`) of an authorized payment."""
        ...

    async def refund(
        self,
        payment_id: str,
        amount: Money | None = None,
        *,
        idempotency_key: IdempotencyKey | None = None,
        tenant_id: str | None = None,
    ) -> Refund:
        """Give back all that is left (or `amount`) of a collected payment."""
        ...


# -- shared input checks --------------------------------------------------------------------

_SAFE_ID = re.compile(r"[A-Za-z0-9_-]{1,255}")


def check_id(value: object, what: str, pattern: re.Pattern[str] = _SAFE_ID) -> str:
    """`value` if it is a non-empty id safe to put in a URL path, else `InvalidRequest`."""
    if not isinstance(value, str) or not pattern.fullmatch(value):
        # The value itself is not echoed: it may be anything the caller passed by mistake.
        raise InvalidRequest(f"{what} must be a vendor id (letters, digits, '_' or '-')")
    return value


class GeneratedKey(FinalKey):
    """A key the adapter made up itself (UUID4): unique already, so it is not scoped."""

    __slots__ = ()


def account_scope(*identity: str | None) -> bytes:
    """A stable id of one vendor account and its credentials (a hash: never the secret itself).

    Adapters hash their credentials into it, so two adapters with different keys (two
    merchants) never share an idempotency record, even with the same service, tenant and key.
    """
    return hashlib.sha256("\0".join(part or "" for part in identity).encode()).digest()


def scoped_key(
    key: IdempotencyKey | None, account: bytes, tenant: str | None, limit: int = 255
) -> IdempotencyKey | None:
    """The key as stored and sent to the vendor: a `ScopedKey` of (tenant, account, key).

    Generated keys (unique already) and keys scoped before pass unchanged.
    """
    if key is None or isinstance(key, FinalKey):
        return key
    return ScopedKey(key, account, tenant, limit)


def call_key(key: IdempotencyKey | None, max_length: int = 255) -> IdempotencyKey:
    """The caller's key, or a fresh UUID4 key (as the vendors' SDKs generate) when none is given."""
    if key is None:
        return GeneratedKey(str(uuid.uuid4()))
    if not isinstance(key, IdempotencyKey):
        raise InvalidRequest("idempotency_key must be an IdempotencyKey")
    if len(key.value) > max_length:
        raise InvalidRequest(f"idempotency key must be at most {max_length} characters here")
    return key


def key_arguments(
    key: IdempotencyKey, header: str, scoped: IdempotencyKey | None
) -> dict[str, Any]:
    """How a call's key reaches `Connector.execute` (api.md 29).

    A caller's key (`scoped`: already scoped by account and tenant) goes through the pipeline:
    claimed, stored, replayed. A key the adapter generated travels as the vendor's idempotency
    header only: nobody can ever replay it, so nothing is claimed or stored for it, and the
    retries stay safe because the vendor deduplicates by that header.
    """
    if isinstance(key, GeneratedKey):
        return {"idempotency_key": None, "headers": {header: key.value}, "idempotent": True}
    return {"idempotency_key": scoped}


def luhn_like(text: str) -> bool:
    """True when `text` contains a 13-19 digit run (spaces/dashes allowed) passing Luhn."""
    for match in re.finditer(r"(?:\d[ -]?){12,18}\d", text):
        digits = [int(c) for c in match.group() if c.isdigit()]
        total = 0
        for i, digit in enumerate(reversed(digits)):
            doubled = digit * 2 if i % 2 else digit
            total += doubled - 9 if doubled > 9 else doubled
        if total % 10 == 0:
            return True
    return False
