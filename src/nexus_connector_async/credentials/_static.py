"""Fixed credentials per service, for API keys and tokens managed outside the library."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from .._errors import InvalidRequest
from .._models import Credentials

__all__ = ["StaticCredentialProvider"]


class StaticCredentialProvider:
    """Serves the credentials in `mapping` (service -> Credentials or bare token string).

    Keys may also be `(service, tenant_id)` tuples for per-tenant credentials; a tenant without
    its own entry falls back to the service's. Services not in the mapping get no credentials.
    """

    def __init__(self, mapping: Mapping[str | tuple[str, str | None], Credentials | str]) -> None:
        self._creds: dict[tuple[str, str | None], Credentials] = {}
        for key, value in mapping.items():
            service, tenant = key if isinstance(key, tuple) else (key, None)
            creds = Credentials(value) if isinstance(value, str) else value
            if not isinstance(creds, Credentials):
                raise InvalidRequest("StaticCredentialProvider values must be Credentials or str")
            self._creds[(service, tenant)] = creds

    def __repr__(self) -> str:
        return f"StaticCredentialProvider(services={sorted({s for s, _ in self._creds})})"

    async def get_credentials(
        self, service: str, tenant_id: str | None = None
    ) -> Credentials | None:
        """The tenant's credentials, else the service's, else None."""
        return self._lookup(service, tenant_id)

    def account_id(self, service: str, tenant_id: str | None) -> bytes:
        """An HMAC of the token the call is sent with: another token is another account."""
        creds = self._lookup(service, tenant_id)
        token = b"" if creds is None else creds.access_token.encode()
        return hmac.new(b"nexus-account", token, hashlib.sha256).digest()

    def _lookup(self, service: str, tenant_id: str | None) -> Credentials | None:
        creds = self._creds.get((service, tenant_id))
        if creds is None and tenant_id is not None:
            creds = self._creds.get((service, None))
        return creds

    async def refresh_credentials(
        self, service: str, tenant_id: str | None = None
    ) -> Credentials | None:
        """Static credentials cannot be refreshed; returns the same ones."""
        return await self.get_credentials(service, tenant_id)
