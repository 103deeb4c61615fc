"""The token of the PayPal app itself, shared by all its tenants."""

from __future__ import annotations

from ..._models import Credentials
from ...credentials._base import CredentialProvider, RefreshesRejected

__all__ = ["ClientToken"]


class ClientToken:
    """One token per PayPal app, whatever the tenant: tenants share the client credentials."""

    def __init__(self, provider: CredentialProvider) -> None:
        self._provider = provider

    def __repr__(self) -> str:
        return f"ClientToken({self._provider!r})"

    async def get_credentials(
        self, service: str, tenant_id: str | None = None
    ) -> Credentials | None:
        return await self._provider.get_credentials(service, None)

    async def refresh_credentials(
        self, service: str, tenant_id: str | None = None
    ) -> Credentials | None:
        return await self._provider.refresh_credentials(service, None)

    async def refresh_if_current(
        self, service: str, tenant_id: str | None, rejected: Credentials
    ) -> Credentials | None:
        if isinstance(self._provider, RefreshesRejected):
            return await self._provider.refresh_if_current(service, None, rejected)
        return await self._provider.refresh_credentials(service, None)
