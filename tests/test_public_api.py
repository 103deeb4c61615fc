"""The public surface: sorted `__all__`, every name importable, private modules stay private."""

from __future__ import annotations

import importlib

import pytest

MODULES = [
    "nexus_connector_async",
    "nexus_connector_async.adapters",
    "nexus_connector_async.testing",
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
