"""One aioboto3 SNS client per AWS account, created on first use and closed together.

The account is the adapter's own (its `session`), or with `sessions` each tenant's: the
application's function is called once per tenant, and that tenant's client kept until the
connector closes. Each account's id (region, endpoint, access key id: hashed) scopes its
idempotency records (api.md 28).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import Callable
from typing import Any

from ..._errors import InvalidRequest
from ..._extras import require_extra
from .._payments import account_scope
from .._vendor import VendorClient, app_lookup

__all__ = ["SessionFactory", "SnsClients"]

#: `sessions=`: a tenant's aioboto3 Session (or an awaitable of one), from its tenant id.
SessionFactory = Callable[[str | None], Any]


class SnsClients:
    """The SNS clients of an adapter, one per AWS account (None: the adapter's own)."""

    def __init__(
        self,
        vendor: VendorClient,
        *,
        region: str,
        endpoint_url: str | None,
        session: Any,
        sessions: SessionFactory | None,
        timeout: float,
        max_connections: int,
    ) -> None:
        self._vendor = vendor
        self._region = region
        self._endpoint_url = endpoint_url
        self._session = session
        self._sessions = sessions
        self._timeout = timeout
        self._max_connections = max_connections
        #: The clients open now, by account.
        self.open: dict[str | None, Any] = {}
        self._account_ids: dict[str | None, bytes] = {}  # see _account_id()
        self._lock = asyncio.Lock()
        self._closed = False
        self._stack = contextlib.AsyncExitStack()

    def __repr__(self) -> str:
        return f"SnsClients(region={self._region!r}, open={len(self.open)})"

    def account(self, tenant_id: str | None) -> str | None:
        """Which AWS account a call goes to: None (the adapter's) or the tenant's."""
        return tenant_id if self._sessions is not None else None

    async def client(self, tenant_id: str | None) -> Any:
        """The call's client, its failures (creating it included) mapped to our errors."""
        try:
            return await self._vendor.sdk(lambda: self._client(tenant_id))
        except ImportError:
            raise InvalidRequest(
                "the SNS adapter needs aioboto3: install nexus-connector-async[sns]"
            ) from None

    async def account_id(self, tenant_id: str | None) -> bytes:
        """The hashed id of the AWS account the call publishes as (its client made first)."""
        await self.client(tenant_id)
        return self._account_ids[self.account(tenant_id)]

    async def aclose(self) -> None:
        """Close every client; none is created after this."""
        self._closed = True
        self.open.clear()
        await self._stack.aclose()

    async def _client(self, tenant_id: str | None) -> Any:
        """The aioboto3 SNS client of the call's account, created on first use."""
        account = self.account(tenant_id)
        client = self.open.get(account)
        if client is not None:
            return client
        async with self._lock:
            if self._closed:
                raise InvalidRequest("the SNS adapter is closed (its connector was closed)")
            client = self.open.get(account)
            if client is None:
                require_extra("SnsSmsAdapter", "sns", "aioboto3")
                from botocore.config import Config  # noqa: PLC0415 - optional extra

                config = Config(
                    # One attempt: retries belong to the pipeline (breaker, budget, at most once).
                    retries={"mode": "standard", "total_max_attempts": 1},
                    connect_timeout=min(5.0, self._timeout),
                    read_timeout=self._timeout,
                    max_pool_connections=self._max_connections,
                )
                session = await self._session_for(account)
                self._account_ids[account] = await self._account_id(session)
                client = await self._stack.enter_async_context(
                    session.client(
                        "sns",
                        region_name=self._region,
                        endpoint_url=self._endpoint_url,
                        config=config,
                    )
                )
                self.open[account] = client
        return client

    async def _session_for(self, tenant_id: str | None) -> Any:
        if self._sessions is None:
            import aioboto3  # noqa: PLC0415 - optional extra: `nexus-connector-async[sns]`

            return self._session or aioboto3.Session()
        with app_lookup("the SNS sessions function"):
            session = self._sessions(tenant_id)
            if inspect.isawaitable(session):
                session = await session
        if not callable(getattr(session, "client", None)):
            raise InvalidRequest("sessions must return an aioboto3.Session for the tenant")
        return session

    async def _account_id(self, session: Any) -> bytes:
        """The AWS account a session publishes as (api.md rule 28): region, endpoint and access
        key id, hashed. Two adapters (or tenants) with other credentials never share a record.
        """
        access = None
        with contextlib.suppress(Exception):  # unreadable credentials fail at the call itself
            creds = await session.get_credentials()
            if creds is not None:
                access = (await creds.get_frozen_credentials()).access_key
        return account_scope("sns", self._region, self._endpoint_url, access)
