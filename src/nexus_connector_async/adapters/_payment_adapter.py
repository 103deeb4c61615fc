"""What the Stripe and PayPal adapters share on top of `VendorClient`: one way a payment call's
idempotency key reaches the pipeline, the currencies of payments seen (rule 33) and how an
unreadable 2xx becomes the vendor's error (rule 34). Each adapter keeps its wire format.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

import msgspec

from .._errors import InvalidRequest
from .._models import IdempotencyKey, Response
from ._errors import VendorResponseError
from ._lru import remember
from ._money import Money
from ._payments import Payment, call_key, key_arguments, scoped_key
from ._vendor import Route, VendorClient

__all__ = ["PaymentAdapterBase", "ResponseReader"]

_T = TypeVar("_T")

#: How many payment currencies an adapter remembers, so a capture or refund of a payment it
#: has seen needs no GET to check the currency (rule 33).
_CURRENCY_CACHE = 4096


@dataclasses.dataclass(frozen=True, slots=True)
class ResponseReader:
    """How one vendor's 2xx answers are read: a body that does not decode is `error`.

    Never an `InvalidRequest`, never resent (api.md 34): the vendor may have acted.
    """

    vendor: str
    name: str
    error: type[VendorResponseError]
    request_id: Callable[[Response], str | None]

    def unreadable(self, response: Response, message: str) -> VendorResponseError:
        """The vendor's error for a 2xx whose `message` part could not be read."""
        return self.error(
            response,
            vendor=self.vendor,
            message=(
                f"{message} (HTTP {response.status}: {self.name} may have acted; do not resend)"
            ),
            request_id=self.request_id(response),
        )

    def decode(self, decoder: Callable[[bytes], _T], response: Response) -> _T:
        """`decoder(response.body)`, an unreadable body raising `unreadable`."""
        try:
            return decoder(response.body)
        except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
            raise self.unreadable(response, "unexpected response body") from None


class PaymentAdapterBase:
    """The plumbing of a payment adapter: keyed sends and the currencies it has seen.

    Every POST carries the vendor's idempotency header (`KEY_HEADER`, at most `KEY_LIMIT`
    characters): the caller's key scoped by account and tenant (api.md 28), or a fresh one.
    """

    KEY_HEADER: ClassVar[str]
    KEY_LIMIT: ClassVar[int]
    #: The `InvalidRequest` text for a capture/refund in another currency (`str.format` with
    #: `kind`, `asked`, `payment_id` and `currency`).
    CURRENCY_REFUSED: ClassVar[str]

    def __init__(self, vendor: VendorClient, account: bytes) -> None:
        self._vendor = vendor
        self._account = account
        self._currencies: OrderedDict[tuple[str | None, str], str] = OrderedDict()

    async def _fetch_currency(self, payment_id: str, tenant_id: str | None, kind: str) -> str:
        """The currency of a payment this adapter has not seen (one GET)."""
        raise NotImplementedError

    def _remember(self, payment: Payment, tenant_id: str | None) -> Payment:
        """Note the payment's currency so a later capture/refund is checked without a GET."""
        remember(
            self._currencies, (tenant_id, payment.id), payment.amount.currency, _CURRENCY_CACHE
        )
        return payment

    async def _check_currency(
        self, kind: str, payment_id: str, amount: Money, tenant_id: str | None
    ) -> None:
        """`InvalidRequest` unless `amount` is in the payment's currency; nothing is sent.

        `kind` names what is checked (PayPal's object kind, Stripe's operation).
        """
        currency = self._currencies.get((tenant_id, payment_id))
        if currency is None:
            currency = await self._fetch_currency(payment_id, tenant_id, kind)
        if amount.currency != currency:
            raise InvalidRequest(
                self.CURRENCY_REFUSED.format(
                    kind=kind, asked=amount.currency, payment_id=payment_id, currency=currency
                )
            )

    async def _send(
        self,
        route: Route,
        body: Any,
        key: IdempotencyKey | None,
        tenant_id: str | None,
        object_id: str | None = None,
    ) -> Response:
        """One call of `route` (at `object_id`), keyed as api.md 28-29 say.

        A route that carries the vendor's idempotency header (every POST) always gets a key: a
        generated one is also the pipeline's, so its retries resend the very same key and the
        vendor cannot act twice. A GET is safe to repeat and is keyed only by the caller.
        """
        endpoint = route.endpoint if object_id is None else route.at(id=object_id)
        if route.endpoint.idempotency_header is not None:
            key = call_key(key, self.KEY_LIMIT)
        keyed: dict[str, Any] = {}
        if key is not None:
            scoped = scoped_key(key, self._account, tenant_id, self.KEY_LIMIT)
            keyed = key_arguments(key, self.KEY_HEADER, scoped)
        return await self._vendor.send(endpoint, body, **keyed, tenant_id=tenant_id)
