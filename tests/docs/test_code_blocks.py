"""Every ```python block in the docs and the README compiles, imports only names that exist,
and runs when its first line is `# runnable`."""

from __future__ import annotations

import ast
import asyncio
import contextlib
import importlib
import inspect
import io
import re
from pathlib import Path
from types import CodeType
from typing import NamedTuple

import pytest

from nexus_connector_async import testing as nexus_testing

ROOT = Path(__file__).resolve().parents[2]
RUNNABLE = "# runnable"

_FENCE = re.compile(
    r"^(?P<indent>[ \t]*)```python[^\n]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.S | re.M
)
_SNIPPET = re.compile(r'^[ \t]*--8<--[ \t]+"(?P<path>[^"]+)"[ \t]*$', re.M)


class Block(NamedTuple):
    path: Path
    line: int
    source: str

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    @property
    def runnable(self) -> bool:
        return self.source.lstrip().startswith(RUNNABLE)


def _expand_snippets(text: str) -> str:
    """Inline pymdownx.snippets includes (`--8<-- "path"`), as mkdocs does when it builds."""
    return _SNIPPET.sub(lambda m: (ROOT / m["path"]).read_text(encoding="utf-8"), text)


def _blocks() -> list[Block]:
    files = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    blocks = []
    for path in files:
        text = path.read_text(encoding="utf-8")
        for match in _FENCE.finditer(text):
            indent = len(match["indent"])
            body = "\n".join(line[indent:] for line in match["body"].splitlines())
            line = text.count("\n", 0, match.start()) + 2
            blocks.append(Block(path, line, _expand_snippets(body)))
    return blocks


BLOCKS = _blocks()


def _compile(block: Block) -> CodeType:
    # Top-level `await` / `async with` are allowed, as in `python -m asyncio`: docs show them.
    code: CodeType = compile(
        block.source, block.id, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True
    )
    return code


def test_the_docs_have_code_blocks_and_some_are_runnable() -> None:
    assert len(BLOCKS) >= 20
    assert sum(b.runnable for b in BLOCKS) >= 5


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_every_python_block_compiles(block: Block) -> None:
    _compile(block)


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_every_name_a_block_imports_from_the_package_exists(block: Block) -> None:
    """`from nexus_connector_async... import X` must name a real module and a real X."""
    tree = ast.parse(block.source)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
            "nexus_connector_async"
        ):
            module = importlib.import_module(node.module or "")
            for alias in node.names:
                assert alias.name == "*" or hasattr(module, alias.name), (
                    f"{block.id}: {node.module} has no {alias.name}"
                )
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("nexus_connector_async"):
                    importlib.import_module(alias.name)


RUNNABLE_BLOCKS = [b for b in BLOCKS if b.runnable]


@pytest.fixture
def _backoff_off() -> object:
    nexus_testing.set_testing(True)
    yield
    nexus_testing.set_testing(False)


@pytest.mark.usefixtures("_backoff_off")
@pytest.mark.parametrize("block", RUNNABLE_BLOCKS, ids=[b.id for b in RUNNABLE_BLOCKS])
def test_runnable_blocks_run(block: Block) -> None:
    """Blocks marked `# runnable` run to the end (their own asserts included)."""
    namespace: dict[str, object] = {"__name__": "__docs__"}
    with contextlib.redirect_stdout(io.StringIO()):
        result = eval(_compile(block), namespace)  # our own docs
        if inspect.iscoroutine(result):
            asyncio.run(result)
