"""The runnable examples under docs/examples/ work against a local vendor stub on 127.0.0.1."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from aiohttp.test_utils import TestClient as AiohttpClient
from aiohttp.test_utils import TestServer

from nexus_connector_async.testing import set_testing
from tests.docs._stub import StubVendor

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "docs" / "examples"
API_KEY = "sk_test_docs"


def load(name: str) -> ModuleType:
    """Import docs/examples/<name>.py (the folder is not a package)."""
    spec = importlib.util.spec_from_file_location(f"docs_example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # FastAPI and dataclasses resolve annotations through it
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def stub() -> Iterator[StubVendor]:
    with StubVendor() as vendor:
        yield vendor


@pytest.fixture
def no_backoff() -> Iterator[None]:
    set_testing()
    yield
    set_testing(False)


def assert_order_42_charged_once_with_our_key(stub: StubVendor) -> None:
    [charge] = [r for r in stub.charge_posts if r.headers["Idempotency-Key"] == "order-42"]
    assert charge.headers["Authorization"] == f"Bearer {API_KEY}"
    assert charge.headers["Idempotency-Key"] == "order-42"
    assert charge.form == {"amount": "500", "currency": "usd", "source": "tok_visa"}


async def test_the_aiohttp_app_charges_an_order_once_and_replays_repeats(
    stub: StubVendor,
) -> None:
    app = load("aiohttp_app").create_app(stub.base_url, API_KEY)
    async with AiohttpClient(TestServer(app, host="127.0.0.1")) as client:
        first = await client.post("/orders/42/pay", json={"amount": 500})
        assert first.status == 200
        assert await first.json() == {"paid": True, "charge": "ch_1", "replayed": False}

        again = await client.post("/orders/42/pay", json={"amount": 500})
        assert await again.json() == {"paid": True, "charge": "ch_1", "replayed": True}

        other_amount = await client.post("/orders/42/pay", json={"amount": 900})
        assert other_amount.status == 409

        declined = await client.post(
            "/orders/43/pay", json={"amount": 500, "source": "tok_chargeDeclined"}
        )
        assert declined.status == 402
        assert await declined.json() == {"paid": False, "vendor_status": 402}
    assert_order_42_charged_once_with_our_key(stub)
    assert len(stub.charge_posts) == 2  # order 42 once, order 43 once: repeats never left


def test_the_fastapi_app_opens_its_connector_in_the_lifespan_and_pays_once(
    stub: StubVendor,
) -> None:
    from fastapi.testclient import TestClient  # noqa: PLC0415 - the docs extra

    app = load("fastapi_app").create_app(stub.base_url, API_KEY)
    with TestClient(app) as client:  # runs the lifespan: startup, requests, shutdown
        assert app.state.connector is not None
        first = client.post("/orders/42/pay", json={"amount": 500})
        assert first.json() == {"paid": True, "charge": "ch_1", "replayed": False}
        again = client.post("/orders/42/pay", json={"amount": 500})
        assert again.json() == {"paid": True, "charge": "ch_1", "replayed": True}
        assert client.post("/orders/42/pay", json={"amount": 900}).status_code == 409
    assert_order_42_charged_once_with_our_key(stub)
    assert len(stub.charge_posts) == 1


@pytest.mark.usefixtures("no_backoff")
async def test_the_worker_pays_each_order_once_through_a_503_and_reports_outcomes(
    stub: StubVendor,
) -> None:
    worker = load("worker")
    stub.fail_next = [503]  # the first charge is retried: its idempotency key makes it safe
    jobs = [worker.PaymentJob(f"o{n}", 100 + n) for n in range(8)]
    jobs += [
        worker.PaymentJob("o1", 101),
        worker.PaymentJob("bad", 100, source="tok_chargeDeclined"),
    ]
    outcomes = await worker.run_worker(jobs, base_url=stub.base_url, api_key=API_KEY, concurrency=4)
    assert outcomes == {"paid": 8, "replayed": 1, "declined": 1}
    keys = [r.headers["Idempotency-Key"] for r in stub.charge_posts]
    assert len(keys) == 10  # 8 orders + the 503's retry + the declined card; no duplicate
    assert sorted(set(keys)) == sorted({f"order-o{n}" for n in range(8)} | {"order-bad"})


async def test_the_worker_stops_taking_jobs_once_stop_is_set(stub: StubVendor) -> None:
    import asyncio  # noqa: PLC0415

    worker = load("worker")
    stop = asyncio.Event()
    stop.set()
    outcomes = await worker.run_worker(
        [worker.PaymentJob("o1", 100)], base_url=stub.base_url, api_key=API_KEY, stop=stop
    )
    assert outcomes == {}
    assert stub.charge_posts == []


def test_the_worker_script_reads_jobs_from_stdin_and_prints_outcomes(stub: StubVendor) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "STRIPE_BASE_URL": stub.base_url,
        "STRIPE_API_KEY": API_KEY,
    }
    env.pop("REDIS_URL", None)
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "worker.py")],
        input="order-1 500\norder-2 700\norder-1 500\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    assert done.stdout.split("\n")[:2] == ["paid      2", "replayed  1"]
    assert len(stub.charge_posts) == 2


async def test_the_json_audit_log_recipe_writes_one_json_line_per_call_without_secrets(
    stub: StubVendor,
) -> None:
    """docs/operations.md's recipe: configured after the Connector, one JSON line per call."""
    import io  # noqa: PLC0415

    import msgspec  # noqa: PLC0415
    import structlog  # noqa: PLC0415

    from nexus_connector_async import Connector, Endpoint, StaticCredentialProvider  # noqa: PLC0415

    out = io.BytesIO()
    endpoint = Endpoint.create(f"{stub.base_url}/v1/charges", body="form")
    try:
        async with Connector(credentials=StaticCredentialProvider({"stripe": API_KEY})) as c:
            load("json_audit_log").configure_json_audit_log(out)
            for n in range(20):
                payload = {"amount": 500, "currency": "usd", "source": "tok_visa"}
                await c.execute("stripe", endpoint, payload, idempotency_key=f"order-{n}")
    finally:
        structlog.reset_defaults()
    text = out.getvalue()
    assert API_KEY.encode() not in text
    lines = [msgspec.json.decode(line) for line in text.splitlines()]
    assert len(lines) == 20
    assert {line["event"] for line in lines} == {"nexus.call.completed"}
    assert {line["level"] for line in lines} == {"info"}
    assert lines[0]["call"] == f"POST {stub.base_url}/v1/charges"
    assert lines[0]["status"] == 200
    assert lines[0]["timestamp"].endswith("Z")
    assert len(stub.charge_posts) == 20
