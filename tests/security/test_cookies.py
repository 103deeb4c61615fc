"""Tenant isolation on the wire: the connector's own HTTP session keeps no cookies. One session
serves every tenant and account of a process, so a cookie that a vendor's answer to one tenant set
(a session or load-balancer cookie) must never be sent with another tenant's request."""

from __future__ import annotations

from aiohttp import web

from nexus_connector_async import Connector, Endpoint
from tests.faults._servers import serve


async def test_a_cookie_set_by_one_answer_is_not_sent_with_the_next_request() -> None:
    cookies: list[str | None] = []

    async def handle(request: web.Request) -> web.Response:
        cookies.append(request.headers.get("Cookie"))
        response = web.json_response({"ok": True})
        response.set_cookie("session", f"for-{request.query.get('t')}", path="/")
        return response

    async with serve(handle) as local, Connector() as c:
        # By name: aiohttp's default jar never keeps a cookie from an IP-address host.
        base = local.replace("127.0.0.1", "localhost")
        await c.execute("svc", Endpoint(f"{base}/x?t=a"), tenant_id="tenant-a")
        await c.execute("svc", Endpoint(f"{base}/x?t=b"), tenant_id="tenant-b")
        await c.execute("svc", Endpoint(f"{base}/x?t=a"), tenant_id="tenant-a")
    assert cookies == [None, None, None]
