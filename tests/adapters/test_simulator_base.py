"""Every simulator stands on one base: the same `url`, request record, faults, replays and hold."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from nexus_connector_async.testing import (
    PayPalSimulator,
    SimulatedRequest,
    SnsSimulator,
    StripeSimulator,
    TwilioSimulator,
    VendorSimulator,
    capture_logs,
)
from nexus_connector_async.testing._vendor_server import VendorServer

SIMULATORS: list[type[VendorServer]] = [
    PayPalSimulator,
    StripeSimulator,
    TwilioSimulator,
    VendorSimulator,
]


async def send(url: str, method: str = "POST", **kw: Any) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as session, session.request(method, url, **kw) as resp:
        return resp.status, await resp.read()


@pytest.mark.parametrize("kind", SIMULATORS, ids=lambda k: k.__name__)
async def test_every_simulator_has_a_str_url_and_records_requests_alike(
    kind: type[VendorServer],
) -> None:
    async with kind() as sim:
        assert isinstance(sim.url, str)
        assert sim.url.startswith("http://127.0.0.1:")
        await send(f"{sim.url}/v1/x?a=1&a=2", data=b"k=v")
        [request] = sim.requests
    assert isinstance(request, SimulatedRequest)
    assert (request.method, request.path, request.body) == ("POST", "/v1/x", b"k=v")
    assert request.query_params == [("a", "1"), ("a", "2")]
    assert request.form == [("k", "v")]
    assert request.raw_path == "/v1/x?a=1&a=2"
    assert sum(sim.by_status.values()) == 1


async def test_an_injected_fault_answers_only_the_requests_it_matches_times_times() -> None:
    async with VendorSimulator() as sim:
        sim.inject(503, {"error": "down"}, times=2, match=lambda r: r.path == "/v1/down")
        statuses = [
            (await send(f"{sim.url}/v1/up"))[0],
            (await send(f"{sim.url}/v1/down"))[0],
            (await send(f"{sim.url}/v1/down"))[0],
            (await send(f"{sim.url}/v1/down"))[0],
        ]
    assert statuses == [200, 503, 503, 200]
    assert sim.charges == 2


async def test_a_fault_for_every_request_stays_until_the_simulator_is_gone() -> None:
    async with VendorSimulator() as sim:
        sim.inject(500, times=None)
        statuses = [(await send(f"{sim.url}/v1/charges"))[0] for _ in range(3)]
    assert statuses == [500, 500, 500]
    assert sim.charges == 0


async def test_a_processed_fault_does_the_work_and_then_answers_the_fault() -> None:
    async with VendorSimulator() as sim:
        sim.inject(502, processed=True)
        status, _ = await send(f"{sim.url}/v1/charges", headers={"Idempotency-Key": "k1"})
        again, body = await send(f"{sim.url}/v1/charges", headers={"Idempotency-Key": "k1"})
    assert (status, again) == (502, 200)
    assert sim.charges == 1  # the repeat is the stored charge, not a second one
    assert b"ch_000001" in body


async def test_a_replayed_answer_is_the_first_one_and_runs_nothing_again() -> None:
    async with VendorSimulator() as sim:
        first = await send(f"{sim.url}/v1/charges", headers={"Idempotency-Key": "k"})
        second = await send(f"{sim.url}/v1/charges", headers={"Idempotency-Key": "k"})
    assert first == second
    assert sim.charges == 1
    assert len(sim.requests) == 2


async def test_hold_keeps_requests_waiting_until_the_gate_opens() -> None:
    gate = asyncio.Event()
    async with VendorSimulator() as sim:
        sim.hold(gate)
        task = asyncio.create_task(send(f"{sim.url}/v1/charges"))
        await sim.until_held(1)
        assert sim.charges == 0
        gate.set()
        assert (await task)[0] == 200
    assert sim.charges == 1


async def test_a_refused_request_says_why_in_the_log_line_for_an_injected_xml_fault() -> None:
    async with VendorSimulator() as sim:
        xml = b"<Error><Code>Throttling</Code><Message>Rate exceeded</Message></Error>"
        sim.inject(400, xml, {"Content-Type": "text/xml"})
        with capture_logs() as logs:
            status, body = await send(f"{sim.url}/v1/charges")
    assert (status, body) == (400, xml)
    [line] = [e for e in logs if e["event"] == "nexus.simulator.rejected"]
    assert (line["simulator"], line["reason"]) == ("VendorSimulator", "Rate exceeded")


async def test_the_sns_simulator_starts_and_stops_a_moto_of_its_own() -> None:
    pytest.importorskip("moto.server")
    async with SnsSimulator() as sim:
        assert sim.moto_url.startswith("http://127.0.0.1:")
        sim.fail("Publish", "Throttling", status=400)
        status, body = await send(sim.url, data={"Action": "Publish", "PhoneNumber": "+1415"})
        assert (status, b"<Code>Throttling</Code>" in body) == (400, True)
        await send(sim.url, data={"Action": "ListTopics"})  # forwarded to moto
        assert [s.action for s in sim.seen] == ["Publish", "ListTopics"]
        assert await sim.published() == []
    assert sim.moto_url == ""
