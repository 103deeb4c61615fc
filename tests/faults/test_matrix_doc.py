"""docs/reliability.md lists only tests that exist: every node id it names is collected."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "reliability.md"
NODE_ID = re.compile(r"`(tests/[\w/]+\.py::[\w]+(?:\[[^\]`]+\])?)`")


def referenced() -> list[str]:
    return NODE_ID.findall(DOC.read_text(encoding="utf-8"))


def collected(files: set[str]) -> set[str]:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
            *sorted(files),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return {line.strip() for line in result.stdout.splitlines() if "::" in line}


def test_every_test_the_reliability_matrix_names_is_collected() -> None:
    ids = referenced()
    assert len(ids) >= 40, "the matrix names fewer tests than it should: is the regex stale?"
    nodes = collected({i.split("::")[0] for i in ids})
    missing = [i for i in ids if i not in nodes and not any(n.startswith(i + "[") for n in nodes)]
    assert missing == []


def test_every_fault_test_module_appears_in_the_matrix() -> None:
    named = {i.split("::")[0] for i in referenced()}
    modules = {
        str(p.relative_to(ROOT))
        for folder in ("tests/faults", "tests/hostile", "tests/security")
        for p in (ROOT / folder).glob("test_*.py")
        if p.name != "test_matrix_doc.py"
    }
    assert modules - named == set()
