"""The one skeleton every adapter stands on: a `VendorClient` built once per adapter.

It holds the service name, the vendor's base URL (checked once, here), the call policies
(`Policies`), the `Endpoint`s built once from path templates (`Route`), the credential
provider that attaches auth (the only way auth reaches a request) and the error mapper that
turns a vendor's error answer into its typed error. Adapters keep their vendor's wire format;
the client keeps how a call reaches the pipeline, so the four adapters do it one way.
Also: secret-safe header maps and input checks the adapters share.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any, Literal, TypeVar

import msgspec

from .._config import (
    CircuitBreakerConfig,
    ConcurrencyLimit,
    Endpoint,
    RateLimitConfig,
    RetryPolicy,
    Timeouts,
)
from .._connector import Connector
from .._errors import ConnectorError, CredentialRefreshError, HttpStatusError, InvalidRequest
from .._models import Credentials, IdempotencyKey, Response
from .._scrub import check_vendor_url
from ..credentials._base import CredentialProvider

__all__ = [
    "FixedCredentials",
    "Policies",
    "Route",
    "SecretHeaders",
    "VendorClient",
    "app_lookup",
    "check_base_url",
    "check_text",
    "header_safe",
]

_SECRET_HEADERS = frozenset({"authorization"})
_T = TypeVar("_T")

#: Turns a vendor's non-2xx answer into its typed error (`StripeCardError`, `TwilioError`...).
ErrorMapper = Callable[[Response], Exception]
#: Turns an SDK's exception (botocore's `ClientError`...) into ours, or None to let it through.
SdkErrorMapper = Callable[[Exception], ConnectorError | None]


class SecretHeaders(Mapping[str, str]):
    """Endpoint headers whose `repr` masks `Authorization`, so no repr ever shows a key."""

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, str]) -> None:
        self._items = dict(items)

    def __getitem__(self, key: str) -> str:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        shown = {k: "***" if k.lower() in _SECRET_HEADERS else v for k, v in self._items.items()}
        return repr(shown)


def header_safe(value: object, what: str) -> str:
    """`value` if it is a non-empty str fit for an HTTP header (the value is never echoed)."""
    if (
        not isinstance(value, str)
        or not value
        or value != value.strip()
        or not all(" " <= c <= "~" for c in value)
    ):
        raise InvalidRequest(f"{what} must be a non-empty printable ASCII str")
    return value


def check_text(value: Any, what: str, max_length: int) -> str | None:
    """`None`, or a str of at most `max_length` characters."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > max_length:
        raise InvalidRequest(f"{what} must be a str of at most {max_length} characters")
    return value


def check_base_url(url: object, name: str = "base_url", example: str | None = None) -> str:
    """`url` without its trailing `/`, if it is https (http:// only for a loopback host).

    The one check of a vendor root URL: a live key must not cross a network in clear, so
    plain http is only for local simulators.
    """
    if not isinstance(url, str) or not check_vendor_url(url):
        such = f" such as {example}" if example else ""
        raise InvalidRequest(
            f"{name} must be an https URL{such} (http:// only for a loopback host)"
        )
    return url.rstrip("/")


@contextlib.contextmanager
def app_lookup(what: str) -> Iterator[None]:
    """Around the application's own lookup of a tenant's account (`what` names it).

    Our errors pass; any other exception becomes `CredentialRefreshError`, naming only its
    type (its text may hold anything): nothing was sent.
    """
    try:
        yield
    except ConnectorError:
        raise
    except Exception as exc:
        raise CredentialRefreshError(
            f"{what} failed ({type(exc).__name__}); nothing was sent"
        ) from exc


class FixedCredentials:
    """One fixed `Authorization` for a vendor account (an API key, Basic auth), as a provider.

    Refreshing returns the same credentials: a 401 with them is final, as the vendor's own
    SDKs treat a rejected key. `repr` never shows the secret.
    """

    __slots__ = ("_creds",)

    def __init__(self, token: str, token_type: str = "Bearer") -> None:  # noqa: S107 - a scheme
        self._creds = Credentials(token, token_type=token_type)

    def __repr__(self) -> str:
        return f"FixedCredentials({self._creds.token_type})"

    async def get_credentials(
        self, service: str, tenant_id: str | None = None
    ) -> Credentials | None:
        """The account's credentials, whatever the service or tenant."""
        return self._creds

    async def refresh_credentials(
        self, service: str, tenant_id: str | None = None
    ) -> Credentials | None:
        """The same credentials: a fixed key cannot be renewed."""
        return self._creds


@dataclasses.dataclass(frozen=True, slots=True)
class Policies:
    """The resilience policies of a vendor's calls, given once to its adapter."""

    timeout: Timeouts
    retry: RetryPolicy
    circuit_breaker: CircuitBreakerConfig = CircuitBreakerConfig()  # noqa: RUF009 - frozen
    rate_limit: RateLimitConfig | None = None
    concurrency_limit: ConcurrencyLimit | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Route:
    """A vendor operation built once: a URL template (`.../v1/refunds/{id}`) and its `Endpoint`.

    A fixed path is the `Endpoint` itself; a templated one copies it with the filled-in URL
    (ids checked by the adapter first), so the policies and headers are never rebuilt.
    """

    template: str
    endpoint: Endpoint

    def at(self, **ids: str) -> Endpoint:
        """The endpoint for these path ids (the prototype itself when the path has none)."""
        if not ids:
            return self.endpoint
        return msgspec.structs.replace(self.endpoint, url=self.template.format(**ids))


class VendorClient:
    """How one adapter reaches its vendor through the pipeline, built once per adapter.

    `send` runs a route's `Endpoint` through `Connector.execute` with the client's credentials
    (the one way auth reaches a request) and maps a non-2xx answer with `errors`; `call` runs
    an SDK call (aioboto3, which signs its own requests) through `Connector.call` with the
    same policies. The adapter owns its vendor's payloads only.
    """

    __slots__ = ("base", "connector", "credentials", "errors", "policies", "sdk_errors", "service")

    def __init__(
        self,
        connector: Connector,
        service: str,
        policies: Policies,
        *,
        errors: ErrorMapper | None = None,
        sdk_errors: SdkErrorMapper | None = None,
        base_url: str | None = None,
        credentials: CredentialProvider | None = None,
        example_url: str | None = None,
    ) -> None:
        self.connector = connector
        self.service = service
        self.policies = policies
        self.errors = errors
        self.sdk_errors = sdk_errors
        self.credentials = credentials
        self.base = "" if base_url is None else check_base_url(base_url, example=example_url)

    def __repr__(self) -> str:
        return f"VendorClient(service={self.service!r}, base_url={self.base!r})"

    def route(
        self,
        template: str,
        method: str = "POST",
        *,
        body: Literal["json", "form"] = "json",
        headers: Mapping[str, str] | None = None,
        idempotency_header: str | None = None,
        base: str | None = None,
        rate_limited: bool = True,
        concurrency_limited: bool = True,
    ) -> Route:
        """A `Route` under `base` (the client's base URL by default) with the client's policies.

        The endpoint is built once, from the template with placeholders left as sample ids
        (`x`), so a bad policy or header fails at construction, not on the first call.
        """
        root = self.base if base is None else base
        p = self.policies
        sample = template.format_map(_Sample())
        endpoint = Endpoint(
            root + sample,
            method,
            body=body,
            headers=SecretHeaders(headers or {}),
            timeout=p.timeout,
            rate_limit=p.rate_limit if rate_limited else None,
            circuit_breaker=p.circuit_breaker,
            retry=p.retry,
            idempotency_header=idempotency_header,
            concurrency_limit=p.concurrency_limit if concurrency_limited else None,
        )
        return Route(root + template, endpoint)

    async def send(
        self,
        endpoint: Endpoint,
        payload: Any = None,
        *,
        tenant_id: str | None,
        idempotency_key: IdempotencyKey | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
        credentials: CredentialProvider | None = None,
        errors: ErrorMapper | None = None,
        service: str | None = None,
    ) -> Response:
        """One vendor request through the pipeline; a non-2xx answer raises the vendor's error."""
        response = await self.connector.execute(
            service or self.service,
            endpoint,
            payload,
            idempotency_key=idempotency_key,
            tenant_id=tenant_id,
            raise_for_status=False,
            headers=headers,
            credentials=credentials if credentials is not None else self.credentials,
            idempotent=idempotent,
        )
        if not response.ok:
            mapper = errors or self.errors
            raise HttpStatusError(response) if mapper is None else mapper(response)
        return response

    async def sdk(self, fn: Callable[[], Awaitable[_T]]) -> _T:
        """Await one SDK request, its exceptions mapped by `sdk_errors` (others pass).

        Our own errors pass unchanged, their cause kept (a failed credential lookup's).
        """
        try:
            return await fn()
        except ConnectorError:
            raise
        except Exception as exc:
            error = None if self.sdk_errors is None else self.sdk_errors(exc)
            if error is None:
                raise
            raise error from None

    async def call(
        self,
        operation: str,
        fn: Callable[[], Awaitable[_T]],
        *,
        idempotent: bool | None,
        idempotency_key: IdempotencyKey | None = None,
        tenant_id: str | None = None,
        rate_limited: bool = False,
        concurrency_limited: bool = False,
        fingerprint_data: Any = None,
        result_type: Any = Any,
    ) -> _T:
        """One SDK call (`fn`, called once per attempt) through the pipeline's policies."""
        p = self.policies
        return await self.connector.call(
            self.service,
            operation,
            fn,
            idempotency_key=idempotency_key,
            tenant_id=tenant_id,
            rate_limit=p.rate_limit if rate_limited else None,
            circuit_breaker=p.circuit_breaker,
            retry=p.retry,
            timeout=p.timeout.total,
            idempotent=idempotent,
            fingerprint_data=fingerprint_data,
            result_type=result_type,
            concurrency_limit=p.concurrency_limit if concurrency_limited else None,
        )


class _Sample(dict[str, str]):
    """Fills every `{placeholder}` of a path template with a sample id."""

    def __missing__(self, key: str) -> str:
        return "x"
