"""The public surface: sorted `__all__`, every name importable, private modules stay private."""

from __future__ import annotations

import importlib

import pytest

from nexus_connector_async import (
    ConnectionFailed,
    ConnectorError,
    MemoryBackend,
    RequestTimeout,
    ResponseTooLarge,
    StaticCredentialProvider,
    TransportError,
)
from nexus_connector_async.typing import Backend, CredentialProvider, EventSource

MODULES = [
    "nexus_connector_async",
    "nexus_connector_async.adapters",
    "nexus_connector_async.testing",
    "nexus_connector_async.typing",
]

API_NAMES = {
    "Timeouts",
    "RateLimitConfig",
    "ConcurrencyLimit",
    "CircuitBreakerConfig",
    "RetryPolicy",
    "Endpoint",
    "IdempotencyKey",
    "Credentials",
    "CredentialProvider",
    "StaticCredentialProvider",
    "MemoryBackend",
    "RedisBackend",
    "Connector",
    "Response",
    "ConnectorError",
    "RateLimitExceeded",
    "ConcurrencyLimitExceeded",
    "CircuitOpenError",
    "RequestTimeout",
    "ConnectionFailed",
    "HttpStatusError",
    "IdempotencyConflict",
    "IdempotencyInProgress",
    "CredentialRefreshError",
    "BackendUnavailable",
    "InvalidRequest",
    "OutcomeUnknown",
    "StoredRecordInvalid",
}


@pytest.mark.parametrize("name", MODULES)
def test_all_is_sorted_and_every_name_resolves(name: str) -> None:
    module = importlib.import_module(name)
    exported = module.__all__
    assert list(exported) == sorted(exported)
    for attr in exported:
        assert getattr(module, attr) is not None


def test_the_documented_api_names_are_exported() -> None:
    module = importlib.import_module("nexus_connector_async")
    assert set(module.__all__) >= API_NAMES


def test_the_typing_side_door_names_the_pluggable_protocols() -> None:
    """Backends, credential providers and event sources implement the declared Protocols."""
    assert isinstance(MemoryBackend(), Backend)
    assert isinstance(StaticCredentialProvider({"svc": "k"}), CredentialProvider)
    assert not isinstance(MemoryBackend(), EventSource)


def test_exception_attributes_the_pipeline_reads_are_declared_on_the_base() -> None:
    """`transient`, `throttled`, `sent`, `retry_after`, `status`: plain attributes, defaults."""
    error = ConnectorError("x")
    assert (error.transient, error.throttled, error.sent) == (False, False, None)
    assert (error.retry_after, error.status) == (None, None)
    for kind in (ConnectionFailed, RequestTimeout, ResponseTooLarge):
        assert issubclass(kind, TransportError)
        assert kind("x").transient
