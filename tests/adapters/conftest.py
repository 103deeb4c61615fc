"""Fixtures shared by the adapter tests: moto's SNS server and the simulator in front of it."""

from tests.adapters._moto import aws_session, moto, proxy

__all__ = ["aws_session", "moto", "proxy"]
