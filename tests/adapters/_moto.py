"""moto's real SNS server for the SNS tests: the shared fixtures (`moto` once per module, a fresh
`proxy`, an `SnsSimulator` in front of it, per test) and wire helpers.

`tests/adapters/conftest.py` re-exports the fixtures, so every SNS test file gets the same ones.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from nexus_connector_async.testing import SnsSimulator
from nexus_connector_async.testing._sns import MotoServer, Seen, error_document
from nexus_connector_async.testing._sns import moto_published as published
from nexus_connector_async.testing._sns import moto_reset as reset

__all__ = [
    "ACCESS_KEY",
    "SECRET_KEY",
    "MotoServer",
    "SnsSimulator",
    "attributes",
    "aws_session",
    "error_document",
    "moto",
    "no_ambient_aws",
    "proxy",
    "published",
    "reset",
]

ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def no_ambient_aws(env: pytest.MonkeyPatch) -> None:
    """No profile, credentials file or instance metadata: only what a test gives exists."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        env.delenv(name, raising=False)
    env.delenv("AWS_PROFILE", raising=False)
    env.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    env.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
    env.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture(scope="module")
def aws_session() -> Iterator[Any]:
    """An aioboto3 Session with dummy credentials from the environment only."""
    aioboto3 = pytest.importorskip("aioboto3", reason="the SNS adapter needs the `sns` extra")
    with pytest.MonkeyPatch.context() as env:
        no_ambient_aws(env)
        env.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        env.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        yield aioboto3.Session()


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    """One moto server per test module (it takes a while to start)."""
    with MotoServer() as server:
        yield server


@pytest.fixture
async def proxy(moto: MotoServer) -> AsyncIterator[SnsSimulator]:
    """A fresh `SnsSimulator` in front of the module's moto, emptied first."""
    await reset(moto.url)
    async with SnsSimulator(moto.url) as sim:
        yield sim


def attributes(seen: Seen) -> dict[str, tuple[str, str]]:
    """A Publish's `MessageAttributes` as {name: (DataType, StringValue)}."""
    out: dict[str, tuple[str, str]] = {}
    i = 1
    while f"MessageAttributes.entry.{i}.Name" in seen.params:
        prefix = f"MessageAttributes.entry.{i}"
        out[seen.params[f"{prefix}.Name"]] = (
            seen.params[f"{prefix}.Value.DataType"],
            seen.params[f"{prefix}.Value.StringValue"],
        )
        i += 1
    return out
