"""Fixtures of the credential tests: a local token server and API stub (see `_oauth_server`)."""

from __future__ import annotations

from ._oauth_server import closed_port_url, oauth_server

__all__ = ["closed_port_url", "oauth_server"]
