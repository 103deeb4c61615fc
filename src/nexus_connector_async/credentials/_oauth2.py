"""OAuth2 tokens shared by every worker, refreshed early, and refreshed once.

get_credentials(service, tenant)
  1. cache       the token of (service, tenant) in the backend; fresh -> use it
  2. in-process  one refresh task per key; every caller of this process awaits it
  3. cross-proc  backend lock with a lease; the holder asks the token endpoint, others
                 poll the cache (short backoff, deadline) and keep a still-valid token
  4. store       token + (rotated) refresh token in one value; a failure is remembered
                 for `failure_backoff` seconds so waiters do not retry it in a loop

refresh_if_current(service, tenant, rejected)   (the connector, on a 401)
  refresh only while `rejected` is still the cached token, so a wave of 401s makes one.

This module coordinates (steps 2 and 3); the sealed values of steps 1 and 4 are
`_oauth2_store`'s, the token request on the wire `_oauth2_wire`'s.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import random
import uuid
from collections.abc import Callable, Iterable
from typing import Any, Literal

from .._clock import SYSTEM_CLOCK, Clock
from .._config import Timeouts
from .._errors import ConnectorError, CredentialRefreshError, InvalidRequest
from .._events import Event, TokenRefreshed
from .._logging import get_logger, redact_url
from .._models import Credentials
from .._scrub import Secret, check_vendor_url
from .._transport import Transport
from ..backends._base import KeyValueStore
from ..backends._memory import MemoryBackend
from ..backends._names import escape_name
from ._oauth2_store import Entry, Failure, TokenStore, fernet
from ._oauth2_wire import ClientAuth, GrantType, TokenClient

__all__ = ["OAuth2CredentialProvider"]

_GRANTS = ("client_credentials", "refresh_token")
_CLIENT_AUTHS = ("basic", "body")
_POLL_FIRST = 0.005
_POLL_MAX = 0.25

Reason = Literal["missing", "expired", "proactive", "rejected", "forced"]


@dataclasses.dataclass(frozen=True, slots=True)
class _Refresh:
    """One refresh asked for: whose token (`key`, service, tenant), why, and the token it must
    replace (`rejected`: the one a vendor refused, or None)."""

    key: str
    service: str
    tenant: str | None
    rejected: Credentials | None
    reason: Reason

    @property
    def lock_key(self) -> str:
        return f"{self.key}:lock"

    @property
    def failure_key(self) -> str:
        return f"{self.key}:failed"

    def needed(self, entry: Entry | None, now: float) -> bool:
        """Whether `entry` (the cached token set) still needs this refresh."""
        if entry is None:
            return True
        if self.rejected is not None and _same(entry, self.rejected):
            return True
        return entry.due(now)

    def context(self, client: str) -> dict[str, Any]:
        """The bound context of this refresh's log lines."""
        return {
            "service": self.service,
            "tenant": self.tenant,
            "client": client,
            "reason": self.reason,
        }


class OAuth2CredentialProvider:
    """OAuth2 access tokens (client credentials or refresh token grant) shared through a backend.

    Every worker reads the token of (service, tenant) from `backend`, so all share one token. A
    token within `skew` seconds of expiry (or half its lifetime, for short-lived tokens) is
    refreshed before use; concurrent refreshes collapse into one token request per key, in a
    process and across processes. On a 401 the connector calls `refresh_if_current`, which
    refreshes only if the rejected token is still the cached one. Failures raise
    `CredentialRefreshError` carrying the OAuth error code, never a secret.

    `services=None` serves every service; otherwise other services get `None` (no
    Authorization header). The provider needs no start or close: each token request uses a
    short-lived HTTP session unless `http` (a `Transport`) is given. With `encryption_key` (a
    Fernet key; needs `cryptography`) cached tokens are encrypted at rest in the backend.
    """

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        grant_type: GrantType = "client_credentials",
        refresh_token: str | None = None,
        scope: str | Iterable[str] | None = None,
        backend: KeyValueStore | None = None,
        services: Iterable[str] | None = None,
        client_auth: ClientAuth = "basic",
        skew: float = 300.0,
        timeout: float | Timeouts = 10.0,
        clock: Clock | None = None,
        *,
        http: Transport | None = None,
        encryption_key: str | bytes | None = None,
        logger: Any = None,
        failure_backoff: float = 5.0,
        lock_lease: float | None = None,
        wait_timeout: float | None = None,
    ) -> None:
        if not isinstance(token_url, str) or not check_vendor_url(token_url):
            # The client secret must not cross a network in clear: http:// only for loopback.
            raise InvalidRequest(
                "token_url must be an https URL (http:// only for a loopback host)"
            )
        for name, value in (("client_id", client_id), ("client_secret", client_secret)):
            if not isinstance(value, str) or not value:
                raise InvalidRequest(f"{name} must be a non-empty str")
        if grant_type not in _GRANTS:
            raise InvalidRequest(f"grant_type must be one of {_GRANTS}")
        if grant_type == "refresh_token" and not (isinstance(refresh_token, str) and refresh_token):
            raise InvalidRequest('grant_type="refresh_token" needs a refresh_token')
        if client_auth not in _CLIENT_AUTHS:
            raise InvalidRequest(f"client_auth must be one of {_CLIENT_AUTHS}")
        scope_str = scope if isinstance(scope, str) or scope is None else " ".join(scope)
        if isinstance(timeout, int | float):
            timeout = Timeouts(total=float(timeout), connect=min(float(timeout), 10.0))
        if not isinstance(timeout, Timeouts):
            raise InvalidRequest("timeout must be seconds or a Timeouts")
        self._skew = _seconds("skew", skew)
        self._failure_backoff = _seconds("failure_backoff", failure_backoff)
        # A holder that dies frees the lock when its lease ends; the lease outlives the request.
        self._lease = _seconds("lock_lease", lock_lease or timeout.total + 5.0, positive=True)
        # A waiter may outlast a dead holder's lease and then refresh itself.
        self._wait = _seconds("wait_timeout", wait_timeout or self._lease + timeout.total, True)
        if isinstance(services, str):
            raise InvalidRequest("services must be an iterable of service names, not a str")
        service_set = None if services is None else frozenset(services)
        if service_set is not None and not all(isinstance(s, str) and s for s in service_set):
            raise InvalidRequest("services must be an iterable of service names")

        self._url = token_url
        self._grant_type: GrantType = grant_type
        self._seed_refresh_token = None if refresh_token is None else Secret(refresh_token)
        self._services = service_set
        self._backend: KeyValueStore = backend if backend is not None else MemoryBackend()
        self._clock = clock or SYSTEM_CLOCK
        self._log = logger if logger is not None else get_logger()
        self._emit: Callable[[Event], None] | None = None
        self._client = TokenClient(
            token_url,
            client_id,
            client_secret,
            grant_type=grant_type,
            client_auth=client_auth,
            scope=scope_str,
            timeout=timeout,
            http=http,
        )
        identity = "\0".join((token_url, client_id, grant_type, scope_str or "")).encode()
        # Names the client in logs and reprs without revealing the client id.
        self._id = hashlib.blake2b(identity, digest_size=8).hexdigest()
        # Names its tokens, lock and failure record in the backend: keyed by the secret, so a
        # provider that knows only the (public) client id never finds another's cached token.
        self._cache_id = hmac.new(client_secret.encode(), identity, hashlib.sha256).hexdigest()[:32]
        self._flights: dict[str, asyncio.Task[Credentials]] = {}
        cipher = None if encryption_key is None else fernet(encryption_key)
        self._store = TokenStore(self._backend, cipher, self._clock, self._log, self._id)

    def account_id(self, service: str, tenant_id: str | None) -> bytes:
        """The client's id keyed by its secret: the vendor account its tokens act for."""
        return self._cache_id.encode()

    def bind_events(self, emit: Callable[[Event], None]) -> None:
        """Report `TokenRefreshed` to a connector's event hooks (the connector calls this)."""
        self._emit = emit

    def __repr__(self) -> str:
        services = "all" if self._services is None else sorted(self._services)
        return (
            f"OAuth2CredentialProvider(token_url={redact_url(self._url)!r}, client=<{self._id}>, "
            f"grant_type={self._grant_type!r}, services={services!r})"
        )

    # -- the CredentialProvider protocol --------------------------------------------------------

    def serves(self, service: str) -> bool:
        """Whether this provider has credentials for `service` (see `services=`)."""
        return self._services is None or service in self._services

    async def get_credentials(
        self, service: str, tenant_id: str | None = None
    ) -> Credentials | None:
        """The shared token of (service, tenant), refreshed first if it is due or missing."""
        if not self.serves(service):
            return None
        key, entry = await self._cached(service, tenant_id)
        now = self._clock.time()
        if entry is not None and not entry.due(now):
            return entry.credentials()
        reason: Reason = (
            "missing" if entry is None else "expired" if entry.expired(now) else "proactive"
        )
        try:
            return await self._single_flight(_Refresh(key, service, tenant_id, None, reason))
        except CredentialRefreshError:
            if entry is not None and not entry.expired(self._clock.time()):
                # An early refresh failed; the token still works until it expires.
                return entry.credentials()
            raise

    async def refresh_credentials(
        self, service: str, tenant_id: str | None = None
    ) -> Credentials | None:
        """Replace the token cached now with a new one (once, however many callers ask)."""
        if not self.serves(service):
            return None
        key, current = await self._cached(service, tenant_id)
        rejected = current.credentials() if current is not None else None
        return await self._single_flight(_Refresh(key, service, tenant_id, rejected, "forced"))

    async def refresh_if_current(
        self, service: str, tenant_id: str | None, rejected: Credentials
    ) -> Credentials | None:
        """Refresh only if `rejected` is still the cached token; else return the cached one.

        The connector calls this on a 401, so any number of concurrent 401s for one token
        cause exactly one token request.
        """
        if not self.serves(service):
            return None
        key, entry = await self._cached(service, tenant_id)
        if entry is not None and not _same(entry, rejected) and not entry.due(self._clock.time()):
            self._log.debug(
                "nexus.oauth.refresh_skipped", service=service, tenant=tenant_id, client=self._id
            )
            return entry.credentials()
        return await self._single_flight(_Refresh(key, service, tenant_id, rejected, "rejected"))

    async def _cached(self, service: str, tenant: str | None) -> tuple[str, Entry | None]:
        """The cache key of (service, tenant) and the token set cached there now."""
        key = self._key(service, tenant)
        return key, await self._store.load(key)

    # -- single flight ------------------------------------------------------------------------

    async def _single_flight(self, refresh: _Refresh) -> Credentials:
        """Join this process's refresh of the key, or start it; callers' cancellation spares it."""
        key, rejected = refresh.key, refresh.rejected
        for _ in range(2):
            task = self._flights.get(key)
            if task is not None and task.get_loop() is not asyncio.get_running_loop():
                task = None  # left behind by a closed event loop (tests, reloads)
            if task is None:
                task = asyncio.ensure_future(self._refresh_shared(refresh))
                self._flights[key] = task
                task.add_done_callback(self._flight_done(key))
            creds = await asyncio.shield(task)
            # A flight started for another reason may have kept the very token that was
            # rejected (it looked fresh then); one more flight settles it.
            if rejected is None or not _same(creds, rejected):
                return creds
        return creds

    def _flight_done(self, key: str) -> Any:
        def done(task: asyncio.Task[Credentials]) -> None:
            if self._flights.get(key) is task:
                del self._flights[key]
            if not task.cancelled():
                task.exception()  # retrieved: every caller may have been cancelled meanwhile

        return done

    async def _refresh_shared(self, refresh: _Refresh) -> Credentials:
        """Across processes: refresh under the backend lock, or wait for whoever holds it."""
        lock_key = refresh.lock_key
        owner = uuid.uuid4().hex
        deadline = self._clock.monotonic() + self._wait
        delay = _POLL_FIRST
        while True:
            entry = await self._store.load(refresh.key)
            now = self._clock.time()
            if not refresh.needed(entry, now):
                assert entry is not None
                return entry.credentials()
            failure = await self._store.load_failure(refresh.failure_key)
            if failure is not None and failure.until > now:
                raise failure.exception()
            if await self._backend.acquire_lock(lock_key, owner, self._lease):
                # The lease is extended while the token request runs (api.md 23): a slow
                # token endpoint must not let a second worker start a refresh of its own.
                keeper = asyncio.ensure_future(self._keep_lock(lock_key, owner))
                try:
                    return await self._refresh_locked(refresh)
                finally:
                    keeper.cancel()
                    await asyncio.gather(keeper, return_exceptions=True)
                    await self._store.quietly(
                        "release_lock", self._backend.release_lock(lock_key, owner)
                    )
            # Another worker is refreshing. A token that still works is good enough meanwhile.
            if entry is not None and refresh.rejected is None and not entry.expired(now):
                return entry.credentials()
            remaining = deadline - self._clock.monotonic()
            if remaining <= 0:
                self._log.warning(
                    "nexus.oauth.wait_timeout",
                    service=refresh.service,
                    tenant=refresh.tenant,
                    client=self._id,
                )
                raise CredentialRefreshError(
                    f"no token after waiting {self._wait:g}s for another worker's refresh",
                    error="refresh_timeout",
                )
            await self._clock.sleep(min(remaining, delay * random.uniform(0.5, 1.0)))
            delay = min(delay * 2.0, _POLL_MAX)

    async def _keep_lock(self, lock_key: str, owner: str) -> None:
        """Extend our refresh lock every third of its lease until cancelled.

        Real time, like the token request it outlasts (a test's fake clock must not run ahead
        because a request is slow)."""
        while True:
            await asyncio.sleep(self._lease / 3.0)
            try:
                if not await self._backend.extend_lock(lock_key, owner, self._lease):
                    return  # lost (a backend outage outlived the lease): the CAS still guards
            except ConnectorError:
                continue  # a failed extension: the next one may go through

    async def _refresh_locked(self, refresh: _Refresh) -> Credentials:
        """We hold the lock: ask the token endpoint, unless someone finished just before us."""
        key = refresh.key
        before = await self._backend.get(key)  # what a rotated pair may replace (compare-and-set)
        entry = await self._store.load(key)
        if not refresh.needed(entry, self._clock.time()):
            assert entry is not None
            return entry.credentials()
        refresh_token = None
        if self._grant_type == "refresh_token":
            chain = (entry.refresh_token if entry else None) or self._seed_refresh_token
            refresh_token = None if chain is None else Secret(chain)  # masked in tracebacks
        ctx = refresh.context(self._id)
        started = self._clock.monotonic()
        try:
            reply = await self._client.request(
                refresh_token,
                (self._seed_refresh_token, Secret(entry.access_token) if entry else None),
            )
        except CredentialRefreshError as exc:
            self._log.warning(
                "nexus.oauth.refresh_failed", **ctx, error=exc.error, message=str(exc)
            )
            until = self._clock.time() + self._failure_backoff
            if self._failure_backoff > 0:
                failure = Failure(str(exc), exc.error, exc.description, until)
                await self._store.store_failure(refresh.failure_key, failure, self._failure_backoff)
            raise
        new = Entry.from_reply(reply, refresh_token, self._clock.time(), self._skew)
        ttl = None
        if self._grant_type == "client_credentials" and new.expires_at is not None:
            # Kept a little past expiry; a refresh-token chain is kept for good.
            ttl = max(1.0, new.expires_at - self._clock.time() + 60.0)
        if self._grant_type == "refresh_token":
            await self._store.store_rotated(key, before, new, ttl, ctx)
        else:
            # The token is good even if the backend just failed: the caller gets it regardless.
            await self._store.store(key, new, ttl)
        if self._emit is not None:
            self._emit(TokenRefreshed(refresh.service, refresh.tenant))
        self._log.info(
            "nexus.oauth.token_refreshed",
            **ctx,
            expires_in=reply.expires_in,
            rotated=reply.refresh_token is not None and reply.refresh_token != refresh_token,
            duration_ms=round((self._clock.monotonic() - started) * 1000.0, 2),
        )
        return new.credentials()

    def _key(self, service: str, tenant: str | None) -> str:
        """The cache key: service hash tag, secret-bound client hash, tenant; never a secret.

        Service and tenant are escaped (`escape_name`), so no tenant name reaches another
        tenant's `:lock` or `:failed` key. A refresh-token grant is one chain of tokens whatever
        the service: with rotation, two keys holding copies of it would invalidate each other,
        so the chain has a single key.
        """
        if not isinstance(service, str) or not service:
            raise InvalidRequest("service must be a non-empty str")
        if tenant is not None and (not isinstance(tenant, str) or not tenant):
            raise InvalidRequest("tenant_id must be a non-empty str or None")
        if self._grant_type == "refresh_token":
            return f"oauth2:{{{self._cache_id}}}:chain"
        scope = "-" if tenant is None else "t." + escape_name(tenant)
        return f"oauth2:{{{escape_name(service)}}}:{self._cache_id}:{scope}"


def _same(token: Entry | Credentials, other: Credentials) -> bool:
    return hmac.compare_digest(token.access_token.encode(), other.access_token.encode())


def _seconds(name: str, value: object, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise InvalidRequest(f"{name} must be a number of seconds >= 0")
    if positive and value == 0:
        raise InvalidRequest(f"{name} must be > 0 seconds")
    return float(value)
