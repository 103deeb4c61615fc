"""Decoding arbitrary bytes from a vendor: a value or a typed error, never a bare exception.

`Response.json()` gives what the stdlib JSON parser gives, or raises `InvalidResponse` naming
the problem (not JSON, not UTF-8, empty) without echoing the body; `text()` never raises. The
OAuth2 token endpoint, fed the same bytes, raises `CredentialRefreshError`. Bytes served over
a real socket arrive byte-exact.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from aiohttp import web
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from nexus_connector_async import (
    Connector,
    ConnectorError,
    CredentialRefreshError,
    Endpoint,
    InvalidResponse,
    OAuth2CredentialProvider,
    Response,
)
from nexus_connector_async.testing import MockTransport, RecordedRequest
from tests.faults._servers import serve

from ._strategies import check_refusal

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**63), max_value=2**64 - 1),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(), inner, max_size=4)
    ),
    max_leaves=15,
)
bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    # Valid JSON cut short, or with bytes that are not UTF-8 spliced in.
    st.tuples(json_values, st.integers(min_value=0, max_value=50)).map(
        lambda t: json.dumps(t[0]).encode()[: t[1]]
    ),
    st.tuples(st.text(max_size=20), st.binary(min_size=1, max_size=4)).map(
        lambda t: b'{"k": "' + t[0].encode() + b"\xff" + t[1] + b'"}'
    ),
    st.sampled_from(
        [
            b"<html><body>502 Bad Gateway</body></html>",
            b"\xef\xbb\xbf{}",  # a UTF-8 byte order mark
            b"",
            b"   ",
            b"NaN",
            b"1e999",
            b'{"a": 1}{"b": 2}',
            b"\x00\x00\x00",
            b'{"access_token": "tok\xff", "token_type": "Bearer", "expires_in": 60}',
            b'{"access_token": "tok", "token_type": "Bearer\\r\\nX-Evil: 1"}',
            b'{"access_token": "tok\\r\\nX-Evil: 1", "token_type": "Bearer"}',
            b'{"error": "invalid_client", "error_description": "bad \xff cs_SECRET_0042"}',
        ]
    ),
)


def stdlib(body: bytes) -> Any:
    """The reference: Python's own JSON parser on strict UTF-8, or a marker when it refuses."""
    try:
        value = json.loads(body.decode("utf-8"), parse_constant=_refuse)
    except (UnicodeDecodeError, ValueError):
        return _REFUSED
    return value


class _Refused:
    pass


_REFUSED = _Refused()


def _refuse(name: str) -> Any:
    raise ValueError(name)  # NaN / Infinity are not JSON (RFC 8259)


def check_json_refusal(exc: BaseException, body: bytes) -> None:
    """An `InvalidResponse` naming the problem and the size, never echoing the body."""
    check_refusal(exc, "not valid JSON", "not valid UTF-8", "empty")
    message = str(exc)
    assert isinstance(exc, InvalidResponse)
    assert f"{len(body)} bytes" in message
    text = body.decode("utf-8", "replace").strip()
    if len(text) >= 8:
        assert text not in message
    assert "\r" not in message
    assert "\n" not in message


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float | int):
        return math.isclose(a, b, rel_tol=1e-15) or (math.isinf(a) and a == b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b and type(a) is type(b)) or (isinstance(b, float) and same(b, a))


@SETTINGS
@given(body=bodies, ctype=st.sampled_from(["application/json", "text/html", "x/\r\ny"]))
def test_json_gives_what_the_stdlib_parser_gives_or_a_typed_error(body: bytes, ctype: str) -> None:
    response = Response(200, {"Content-Type": ctype}, body)
    reference = stdlib(body)
    try:
        value = response.json()
    except Exception as exc:
        check_json_refusal(exc, body)
    else:
        if reference is not _REFUSED:
            assert same(value, reference), (value, reference)
    assert isinstance(response.text(), str)  # never raises; bad bytes are replaced


@SETTINGS
@given(body=bodies, status=st.sampled_from([200, 400, 401, 500]))
@example(body=b'{"access_token": "t", "token_type": "\\n"}', status=200)
@example(body=b'{"access_token": "tok\xff", "token_type": "Bearer"}', status=200)
@example(body=b'{"error": "invalid_client", "error_description": "\xff"}', status=400)
async def test_an_oauth_token_endpoint_answering_any_bytes_gives_credentials_or_a_typed_error(
    body: bytes, status: int
) -> None:
    def token_server(request: RecordedRequest) -> Response:
        return Response(status, {"Content-Type": "application/json"}, body)

    provider = OAuth2CredentialProvider(
        "https://auth.vendor.test/token",
        "client-id",
        "cs_SECRET_0042",
        http=MockTransport(token_server),
    )
    try:
        creds = await provider.get_credentials("vendor")
    except Exception as exc:
        check_refusal(exc, "token")
        assert type(exc) is CredentialRefreshError, f"{type(exc).__name__}: {exc}"  # noqa: PT017
        assert "cs_SECRET_0042" not in str(exc)  # noqa: PT017
    else:
        assert status == 200
        assert creds.access_token
        assert not any(c in creds.authorization for c in "\r\n\0")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.binary(max_size=5000), ctype=st.sampled_from(["application/json", "text/plain"]))
async def test_any_bytes_served_over_a_socket_arrive_byte_exact(body: bytes, ctype: str) -> None:
    async def answer(request: web.Request) -> web.Response:
        return web.Response(body=body, headers={"Content-Type": ctype})

    async with serve(answer) as base, Connector() as c:
        response = await c.execute("vendor", Endpoint.create(f"{base}/x", "GET"))
    assert response.body == body
    try:
        response.json()
    except ConnectorError as exc:
        check_json_refusal(exc, body)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"<!DOCTYPE html><html>Maintenance</html>", "not valid JSON"),
        (b'{"id": "ch_1", "amount": ', "not valid JSON"),
        (b'{"name": "\xff"}', "not valid UTF-8"),
        (b"", "empty"),
    ],
)
def test_the_message_names_the_problem_status_size_and_type(body: bytes, problem: str) -> None:
    response = Response(502, {"Content-Type": "text/html"}, body)
    with pytest.raises(InvalidResponse) as err:
        response.json()
    assert problem in str(err.value)
    assert f"HTTP 502, {len(body)} bytes, text/html" in str(err.value)
