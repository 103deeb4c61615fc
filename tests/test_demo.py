"""The README's demo runs end to end and prints its table."""

from __future__ import annotations

import io

import pytest

from nexus_connector_async.__main__ import main
from nexus_connector_async.cli._demo import ROWS, run_demo


async def test_the_demo_runs_payments_through_every_policy_and_prints_a_table() -> None:
    out = io.StringIO()
    counts = await run_demo(payments=120, concurrency=10, out=out)
    text = out.getvalue()
    assert sum(counts.values()) == 120
    assert counts["sent"] > 0
    for key, _ in ROWS:
        assert f"  {key:<14}" in text
    assert "total" in text


def test_the_cli_rejects_an_unknown_command() -> None:
    with pytest.raises(SystemExit) as err:
        main(["nope"])
    assert err.value.code == 2


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


async def test_the_demo_draws_its_progress_bar_only_on_a_terminal() -> None:
    piped, terminal = io.StringIO(), _Terminal()
    await run_demo(payments=40, concurrency=10, out=piped)
    await run_demo(payments=40, concurrency=10, out=terminal)
    assert "\r" not in piped.getvalue()
    assert "\r  [" in terminal.getvalue()
    assert "40 payments in " in piped.getvalue()
    assert " 1 requests" not in piped.getvalue()
