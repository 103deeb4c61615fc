"""The `CredentialProvider` protocol the connector asks for each call's credentials."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from .._models import Credentials

__all__ = ["CredentialProvider", "NamesAccount", "RefreshesRejected"]


@runtime_checkable
class CredentialProvider(Protocol):
    """Supplies credentials per (service, tenant); `None` means "send no Authorization"."""

    async def get_credentials(
        self, service: str, tenant_id: str | None = None
    ) -> Credentials | None:
        """Credentials to use now for (service, tenant); None sends no Authorization."""
        ...

    async def refresh_credentials(
        self, service: str, tenant_id: str | None = None
    ) -> Credentials | None:
        """Fetch new credentials now (after the vendor rejected the current ones)."""
        ...


@runtime_checkable
class RefreshesRejected(Protocol):
    """Optional: refresh only if `rejected` is still the current token.

    So that a wave of concurrent 401s for one token causes exactly one refresh.
    """

    async def refresh_if_current(
        self, service: str, tenant_id: str | None, rejected: Credentials
    ) -> Credentials | None: ...


@runtime_checkable
class NamesAccount(Protocol):
    """Optional: a stable id of the vendor account (and secret) a (service, tenant) call uses.

    The connector derives idempotency keys from it (api.md rule 28), so two providers with
    different secrets never replay each other's records or collide at the vendor. A hash or an
    HMAC, never the secret itself.
    """

    def account_id(self, service: str, tenant_id: str | None) -> bytes: ...
