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


def _caller_key(sent: str) -> str:
    """The caller's part of a key scoped as `<key>.<22-character tag>`."""
    key, dot, tag = sent.rpartition(".")
    assert dot, sent
    assert len(tag) == 22, sent
    return key


def assert_order_42_charged_once_with_our_key(stub: StubVendor) -> None:
    # The key as sent is scoped by the provider's account (api.md rule 28): `order-42.<tag>`.
    [charge] = [
        r for r in stub.charge_posts if _caller_key(r.headers["Idempotency-Key"]) == "order-42"
    ]
    assert charge.headers["Authorization"] == f"Bearer {API_KEY}"
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
    # The examples extra; `nox -s tests-lowest` leaves it out (FastAPI needs newer anyio).
    TestClient = pytest.importorskip("fastapi.testclient").TestClient

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
    keys = [_caller_key(r.headers["Idempotency-Key"]) for r in stub.charge_posts]
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


async def test_the_aiohttp_app_runs_as_written_against_the_stripe_simulator() -> None:
    """The library's own simulator is stricter than the test stub: it wants Stripe-Version."""
    from nexus_connector_async.testing import StripeSimulator  # noqa: PLC0415

    async with StripeSimulator(api_key=API_KEY) as sim:
        app = load("aiohttp_app").create_app(sim.url, API_KEY)
        async with AiohttpClient(TestServer(app, host="127.0.0.1")) as client:
            first = await client.post("/orders/42/pay", json={"amount": 500})
            assert first.status == 200, await first.text()
            body = await first.json()
            assert body["paid"] is True
            assert body["replayed"] is False
            again = await client.post("/orders/42/pay", json={"amount": 500})
            assert (await again.json())["replayed"] is True
            declined = await client.post(
                "/orders/43/pay", json={"amount": 500, "source": "tok_chargeDeclined"}
            )
            assert declined.status == 402
    charges = [r for r in sim.requests if r.path == "/v1/charges"]
    assert len(charges) == 2
    assert all(r.headers.get("Stripe-Version") for r in charges)


async def test_a_simulator_rejection_says_why_in_the_response_and_the_log_line() -> None:
    import aiohttp  # noqa: PLC0415
    from structlog.testing import capture_logs  # noqa: PLC0415

    from nexus_connector_async.testing import StripeSimulator  # noqa: PLC0415

    async with StripeSimulator(api_key=API_KEY) as sim, aiohttp.ClientSession() as http:
        with capture_logs() as logs:
            async with http.post(
                f"{sim.url}/v1/charges",
                data={"amount": "500", "currency": "usd", "source": "tok_visa"},
                headers={"Authorization": f"Bearer {API_KEY}", "Idempotency-Key": "k1"},
            ) as resp:
                status, body = resp.status, await resp.json()
    assert status == 400
    assert "Stripe-Version" in body["error"]["message"]
    (line,) = [e for e in logs if e["event"] == "nexus.simulator.rejected"]
    assert line["status"] == 400
    assert line["log_level"] == "warning"
    assert "Stripe-Version" in line["reason"]
    assert line["simulator"] == "StripeSimulator"


async def test_the_worker_runs_as_written_against_the_stripe_simulator() -> None:
    from nexus_connector_async.testing import StripeSimulator  # noqa: PLC0415

    worker = load("worker")
    async with StripeSimulator(api_key=API_KEY) as sim:
        jobs = [worker.PaymentJob(f"o{n}", 100 + n) for n in range(3)]
        jobs.append(worker.PaymentJob("o1", 101))
        outcomes = await worker.run_worker(jobs, base_url=sim.url, api_key=API_KEY)
    assert outcomes == {"paid": 3, "replayed": 1}


def test_the_fastapi_app_runs_as_written_against_the_stripe_simulator() -> None:
    import asyncio  # noqa: PLC0415
    import threading  # noqa: PLC0415

    # The examples extra; `nox -s tests-lowest` leaves it out (FastAPI needs newer anyio).
    TestClient = pytest.importorskip("fastapi.testclient").TestClient

    from nexus_connector_async.testing import StripeSimulator  # noqa: PLC0415

    # The simulator runs on its own loop in a thread: TestClient drives the app on another.
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    sim = StripeSimulator(api_key=API_KEY)
    asyncio.run_coroutine_threadsafe(sim.start(), loop).result(10)
    try:
        app = load("fastapi_app").create_app(sim.url, API_KEY)
        with TestClient(app) as client:
            first = client.post("/orders/42/pay", json={"amount": 500})
            assert first.status_code == 200, first.text
            assert first.json()["replayed"] is False
            assert client.post("/orders/42/pay", json={"amount": 500}).json()["replayed"] is True
    finally:
        asyncio.run_coroutine_threadsafe(sim.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def test_the_examples_extra_installs_every_package_the_examples_import() -> None:
    import ast  # noqa: PLC0415
    import tomllib  # noqa: PLC0415

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = {"aiohttp", "msgspec", "structlog", "anyio", "nexus_connector_async"}
    extra = {
        req.split(">")[0].split("[")[0] for req in project["optional-dependencies"]["examples"]
    }
    provides = {"fastapi": {"fastapi", "pydantic", "starlette"}, "uvicorn": {"uvicorn"}}
    installable = core | set().union(*(provides.get(name, {name}) for name in extra))
    imported: set[str] = set()
    for path in EXAMPLES.glob("*.py"):
        source = path.read_text()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
        if "uvicorn " in source:
            imported.add("uvicorn")  # run by the command its docstring gives
    third_party = {m for m in imported if m not in sys.stdlib_module_names}
    assert third_party <= installable, third_party - installable
    assert "uvicorn" in extra
