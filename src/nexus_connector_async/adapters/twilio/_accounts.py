"""Which Twilio account a call goes out with, and what the adapter derives from it once.

The adapter's own account, or the tenant's from a `TwilioAccountProvider`: its SID in the
URL path, HTTP Basic with its secret, its own scrubber and idempotency scope (api.md 28, 37).
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import re
from collections import OrderedDict
from typing import Final, Protocol, runtime_checkable

from ..._errors import InvalidRequest
from ..._scrub import Scrubber
from .._lru import remember
from .._payments import account_scope
from .._vendor import FixedCredentials, Route, VendorClient, app_lookup
from ._errors import error_from_response

__all__ = [
    "Account",
    "Accounts",
    "TwilioAccount",
    "TwilioAccountProvider",
    "check_sender",
    "check_service_sid",
]

_ACCOUNT_SID: Final = re.compile(r"AC[0-9a-fA-F]{32}")
_API_KEY_SID: Final = re.compile(r"SK[0-9a-fA-F]{32}")
_SERVICE_SID: Final = re.compile(r"MG[0-9a-fA-F]{32}")
#: How many tenants' accounts the adapter keeps derived state for (URLs, header, scrubber).
_ACCOUNT_CACHE: Final = 1024


def check_sender(from_number: object) -> str:
    """`from_number` if it has the shape of a sender."""
    # E.164, a short code or an alphanumeric sender ID: Twilio checks ownership; we check shape.
    if (
        not isinstance(from_number, str)
        or not from_number
        or len(from_number) > 64
        or not from_number.isprintable()
    ):
        raise InvalidRequest("from_number must be a non-empty printable str")
    return from_number


def check_service_sid(sid: object) -> str | None:
    """`sid` if it is None or a Messaging Service SID (`MG...`)."""
    if sid is not None and not (isinstance(sid, str) and _SERVICE_SID.fullmatch(sid)):
        raise InvalidRequest("messaging_service_sid must be 'MG' followed by 32 hex digits")
    return sid


@dataclasses.dataclass(frozen=True, slots=True)
class TwilioAccount:
    """One Twilio account (or subaccount) and its credentials, for `TwilioSmsAdapter`.

    `account_sid` (`AC...`) names the account in every URL path. Auth is HTTP Basic with that
    SID and `auth_token`, or with `api_key_sid` (`SK...`) and the key's secret as `auth_token`.
    `from_number` / `messaging_service_sid`, when either is set, replace the adapter's sender:
    a subaccount sends only from numbers and Messaging Services it owns. The token never
    appears in `repr`.
    """

    account_sid: str
    auth_token: str = dataclasses.field(repr=False)
    api_key_sid: str | None = None
    from_number: str | None = None
    messaging_service_sid: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.account_sid, str) or not _ACCOUNT_SID.fullmatch(self.account_sid):
            raise InvalidRequest("account_sid must be 'AC' followed by 32 hex digits")
        key = self.api_key_sid
        if key is not None and not (isinstance(key, str) and _API_KEY_SID.fullmatch(key)):
            raise InvalidRequest("api_key_sid must be 'SK' followed by 32 hex digits")
        token = self.auth_token
        if not isinstance(token, str) or not token or not token.isprintable():
            raise InvalidRequest("auth_token must be a non-empty printable str")
        if self.from_number is not None:
            check_sender(self.from_number)
        check_service_sid(self.messaging_service_sid)


@runtime_checkable
class TwilioAccountProvider(Protocol):
    """Names the Twilio account each (service, tenant) sends from: `credentials=` of the adapter.

    Asked before every call, so rotated tokens take effect at once; keep it fast (a dict, a
    cache). An exception other than a `ConnectorError` becomes `CredentialRefreshError`
    (nothing was sent).
    """

    async def get_account(self, service: str, tenant_id: str | None = None) -> TwilioAccount:
        """The account (SID, Basic secret, optional sender) for (service, tenant)."""
        ...


class Account:
    """What the adapter derives from one account, built once: routes, auth, scrubber, scope."""

    __slots__ = (
        "auth",
        "balance",
        "errors",
        "from_number",
        "messages",
        "messaging_service_sid",
        "scope",
        "scrub",
        "sid",
    )

    def __init__(self, account: TwilioAccount, messages: Route, balance: Route) -> None:
        self.sid = account.account_sid
        user = account.api_key_sid or account.account_sid
        token = base64.b64encode(f"{user}:{account.auth_token}".encode()).decode("ascii")
        # HTTP Basic as the pipeline attaches every vendor's auth: a credential provider.
        self.auth = FixedCredentials(token, "Basic")
        self.scrub = Scrubber((account.auth_token, token))
        self.errors = functools.partial(error_from_response, scrub=self.scrub)
        # Idempotency is scoped by account (api.md 28): two accounts (two subaccounts of one
        # parent too) never share a record, even for the same tenant and key.
        self.scope = account_scope(
            "twilio", account.account_sid, account.api_key_sid, account.auth_token
        )
        self.from_number = account.from_number
        self.messaging_service_sid = account.messaging_service_sid
        self.messages = messages
        self.balance = balance

    def __repr__(self) -> str:
        return f"Account(sid={self.sid!r})"


class Accounts:
    """The account each call goes out with: the adapter's own, or the tenant's (kept derived).

    A provider's account is asked for before every call, so a rotated token takes effect at
    once; what is derived from it is kept for the `_ACCOUNT_CACHE` most recent accounts.
    """

    def __init__(
        self,
        vendor: VendorClient,
        fixed: TwilioAccount | None,
        provider: TwilioAccountProvider | None,
    ) -> None:
        self._vendor = vendor
        self._provider = provider
        self._derived: OrderedDict[TwilioAccount, Account] = OrderedDict()
        self.fixed = None if fixed is None else self._derive(fixed)

    def __repr__(self) -> str:
        return f"Accounts(fixed={self.fixed!r})"

    async def get(self, tenant_id: str | None) -> Account:
        """The account for this call's tenant."""
        if self.fixed is not None:
            return self.fixed
        assert self._provider is not None
        with app_lookup("the Twilio credentials provider"):
            account = await self._provider.get_account(self._vendor.service, tenant_id)
        if not isinstance(account, TwilioAccount):
            raise InvalidRequest("the credentials provider must return a TwilioAccount")
        derived = self._derived.get(account)
        if derived is None:
            return remember(self._derived, account, self._derive(account), _ACCOUNT_CACHE)
        self._derived.move_to_end(account)
        return derived

    def _derive(self, account: TwilioAccount) -> Account:
        """The account's routes (its SID in the path), built once per account."""
        root = f"/2010-04-01/Accounts/{account.account_sid}"
        messages = self._vendor.route(f"{root}/Messages.json", body="form")
        # The same account's REST API: its concurrency limit too, not its Messages rate limit.
        balance = self._vendor.route(f"{root}/Balance.json", "GET", rate_limited=False)
        return Account(account, messages, balance)
