"""The auth flow: credentials on each attempt, and 401 -> refresh -> resend once.

Like httpx's auth flows, the whole exchange lives here: the attempt asks the flow for its
Authorization header, a 401 for those credentials makes the flow refresh them, and the flow
sends the attempt once more with the fresh token. The retry loop never learns about it: the
resend is not a retry (no backoff, no retry budget, the same attempt number), though, like
any send, it is admitted by the breaker and the limiter first.
"""

from __future__ import annotations

from collections.abc import Mapping

from .._models import Credentials
from .._scrub import MaskedHeaders
from ..credentials._base import CredentialProvider, RefreshesRejected
from ._call import Call, Send
from ._outcome import Outcome

__all__ = ["AuthFlow"]


class AuthFlow:
    """One call's credentials from `provider`; refreshed and resent at most once per call."""

    __slots__ = ("provider", "refreshed")

    def __init__(self, provider: CredentialProvider) -> None:
        self.provider = provider
        self.refreshed = False  # a 401 already forced a refresh: another 401 is final

    async def authorize(
        self, call: Call, headers: Mapping[str, str]
    ) -> tuple[Mapping[str, str], Credentials | None]:
        """The headers with the provider's Authorization added, and the credentials used."""
        creds = await self.provider.get_credentials(call.service, call.tenant)
        if creds is None:
            return headers, None
        authorized = MaskedHeaders(headers)
        authorized["Authorization"] = creds.authorization
        return authorized, creds

    async def refreshes(self, call: Call, rejected: Credentials) -> bool:
        """A 401 came for `rejected`: refresh them; True if a resend with new ones may help.

        Only once per call, and only if the provider now has another token (someone else's
        refresh counts: a provider that `RefreshesRejected` does not refresh it again).
        """
        if self.refreshed:
            return False
        provider = self.provider
        if isinstance(provider, RefreshesRejected):
            fresh = await provider.refresh_if_current(call.service, call.tenant, rejected)
        else:
            fresh = await provider.refresh_credentials(call.service, call.tenant)
        return fresh is not None and fresh.access_token != rejected.access_token

    async def send(self, send: Send, call: Call, number: int, is_retry: bool) -> Outcome | None:
        """Send the attempt; after a 401 with refreshed credentials, send it once more."""
        outcome = await send(call, number, is_retry)
        if outcome is None or outcome.reauth is None or self.refreshed:
            return outcome
        self.refreshed = True
        # A rejected token is our problem, not a vendor attempt: the resend is this attempt
        # again, admitted as a first one would be.
        return await send(call, number, False)
