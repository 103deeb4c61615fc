"""Without an optional extra, the error names the extra to install (run in a fresh interpreter
where the extra's package cannot be imported)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
BLOCK = "import sys; sys.modules[{mod!r}] = None; "  # `import mod` now fails as if not installed


def _run(module: str, code: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.run(
        [sys.executable, "-c", BLOCK.format(mod=module) + code],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_redis_backend_without_the_redis_extra_names_it() -> None:
    proc = _run(
        "redis",
        "from nexus_connector_async import RedisBackend",
    )
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last == (
        "ImportError: RedisBackend needs the 'redis' extra: "
        "pip install 'nexus-connector-async[redis]'"
    )
    assert "ModuleNotFoundError" not in proc.stderr


def test_the_core_imports_without_redis() -> None:
    proc = _run("redis", "import nexus_connector_async; print(nexus_connector_async.Connector)")
    assert proc.returncode == 0, proc.stderr
    assert "Connector" in proc.stdout


def test_cli_status_without_the_cli_extra_is_one_line() -> None:
    proc = _run(
        "redis",
        "from nexus_connector_async.__main__ import main; "
        "raise SystemExit(main(['status', '--redis', 'redis://127.0.0.1:1']))",
    )
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [
        "error: 'nexus-connector status' needs the 'cli' extra: "
        "pip install 'nexus-connector-async[cli]'"
    ]


def test_sns_adapter_without_the_sns_extra_names_it() -> None:
    proc = _run(
        "aioboto3",
        "import asyncio\n"
        "from nexus_connector_async import Connector\n"
        "from nexus_connector_async.adapters import SnsSmsAdapter\n"
        "async def main():\n"
        "    async with Connector() as c:\n"
        "        await SnsSmsAdapter(c)._clients._client(None)\n"
        "asyncio.run(main())\n",
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        "ImportError: SnsSmsAdapter needs the 'sns' extra: pip install 'nexus-connector-async[sns]'"
    )


def test_sns_from_settings_without_the_sns_extra_builds_and_its_first_send_names_it() -> None:
    """`connect()` imports no adapter it does not build, and SNS asks for aioboto3 lazily."""
    proc = _run(
        "aioboto3",
        "import asyncio, sys\n"
        "from nexus_connector_async import Settings, connect\n"
        "assert 'nexus_connector_async.adapters' not in sys.modules\n"
        "async def main():\n"
        "    async with connect(Settings(sms='sns')) as app:\n"
        "        print(type(app.sms).__name__, flush=True)\n"
        "        await app.sms.send('+14155552671', 'hi')\n"
        "asyncio.run(main())\n",
    )
    assert proc.returncode == 1
    assert proc.stdout.splitlines() == ["SnsSmsAdapter"]
    assert "nexus-connector-async[sns]" in proc.stderr.strip().splitlines()[-1]
