"""TLS certificates are verified by default; turning that off is never silent.

A loopback HTTPS server with a freshly made self-signed certificate: the default connector
refuses it with a `ConnectionFailed` naming the certificate (and nothing reaches the server's
handler); `verify_ssl=False`, on the transport or passed through the `Connector`, connects but
raises a loud `RuntimeWarning` at construction.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from nexus_connector_async import (
    AiohttpTransport,
    ConnectionFailed,
    Connector,
    Endpoint,
    RetryPolicy,
)
from tests.faults._servers import serve

x509 = pytest.importorskip("cryptography.x509")
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

DISABLED = r"TLS certificate verification is DISABLED"


def self_signed(directory: Path) -> ssl.SSLContext:
    """A server context with a new self-signed certificate for 127.0.0.1."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return context


class Server:
    def __init__(self) -> None:
        self.handled = 0
        self.base = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.handled += 1
        return web.json_response({"ok": True})


@pytest.fixture
async def https(tmp_path: Path) -> AsyncIterator[Server]:
    server = Server()
    async with serve(server.handle, ssl_context=self_signed(tmp_path)) as base:
        server.base = base
        yield server


async def test_the_default_connector_refuses_a_self_signed_certificate(https: Server) -> None:
    ep = Endpoint.create(f"{https.base}/v1/charges", "POST").with_retry(
        RetryPolicy(max_attempts=2, base_delay=0.0, max_delay=0.0)
    )
    async with Connector() as c:
        with pytest.raises(ConnectionFailed, match=r"(?i)certificate") as err:
            await c.execute("vendor", ep, {"amount": 1})
    assert err.value.sent is False  # the handshake failed: no byte of the request went out
    assert https.handled == 0


async def test_the_default_transport_verifies_certificates(https: Server) -> None:
    transport = AiohttpTransport()
    async with Connector(http=transport) as c:
        with pytest.raises(ConnectionFailed, match=r"(?i)certificate"):
            await c.execute("vendor", Endpoint.create(f"{https.base}/x", "GET"))
    assert https.handled == 0


async def test_aiohttp_transport_with_verify_ssl_false_warns_loudly_then_connects(
    https: Server,
) -> None:
    with pytest.warns(RuntimeWarning, match=DISABLED):
        transport = AiohttpTransport(verify_ssl=False)
    async with Connector(http=transport) as c:
        response = await c.execute("vendor", Endpoint.create(f"{https.base}/x", "GET"))
    assert response.json() == {"ok": True}
    assert https.handled == 1


async def test_connector_verify_ssl_false_is_passed_through_and_warns(https: Server) -> None:
    with pytest.warns(RuntimeWarning, match=DISABLED) as record:
        c = Connector(verify_ssl=False)
    assert len(record) == 1
    async with c:
        response = await c.execute("vendor", Endpoint.create(f"{https.base}/x", "GET"))
    assert response.status == 200
    assert https.handled == 1


def test_disabling_verification_is_an_error_where_warnings_are_errors() -> None:
    """Under `-W error` (this suite's setting) nobody turns verification off by accident."""
    with pytest.raises(RuntimeWarning, match=DISABLED):
        Connector(verify_ssl=False)


async def test_a_session_of_yours_with_ssl_off_warns_too() -> None:
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False))
    try:
        with pytest.warns(RuntimeWarning, match=DISABLED):
            AiohttpTransport(session)
    finally:
        await session.close()
