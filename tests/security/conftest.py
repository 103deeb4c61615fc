"""Fixtures of the isolation tests: the local token server of the credential tests."""

from __future__ import annotations

from tests.credentials._oauth_server import oauth_server

__all__ = ["oauth_server"]
