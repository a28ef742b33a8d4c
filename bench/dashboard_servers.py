"""The processes the dashboard benchmark measures, and how their CPU and memory are read.

Each setup is one server process on a 127.0.0.1 port of its own, started and stopped by the
bench: uvicorn with one worker for our app (B, C) and the floor (D), Node.js for PostGraphile
(A). Children are tied to the bench with ``PR_SET_PDEATHSIG``, so none outlives it even if it
is killed. CPU and RSS are read from outside with psutil, counting reaped children too, so
that a PostgreSQL backend that exits mid-round still has its CPU counted.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from tests.node_packages import cache_root, node_missing, npm_installed

ROOT = Path(__file__).resolve().parent.parent
POSTGRAPHILE_DIR = Path(__file__).resolve().parent / "postgraphile"
CACHE = cache_root("bench")
# The app's code the servers import: a copy is taken at the start of a run so that a
# colleague's edit to the checkout cannot make one server run other code than another.
CODE_DIRS = ("app", "loaders", "resolvers", "migrations")
EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Unavailable|Exit|Interrupt)\b")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL it if the bench dies, so no server outlives a run."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


# --------------------------------------------------------------------------------------------
# CPU and memory of a process tree, from outside


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and all its descendants, dead ones included.

    A process's ``children_*`` times hold its reaped children (the kernel adds them when it
    waits for them), so sampling before and after a round and subtracting counts every
    backend that lived during the round, also one that exited before the second sample.
    """
    root = psutil.Process(pid)
    times = root.cpu_times()
    total = times.user + times.system + times.children_user + times.children_system
    for child in root.children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            t = child.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
    return total


def tree_rss_bytes(pid: int) -> int:
    root = psutil.Process(pid)
    total = root.memory_info().rss
    for child in root.children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            total += child.memory_info().rss
    return total


# --------------------------------------------------------------------------------------------
# Server processes


@dataclass
class Server:
    """One server process of a setup: how to start it and how to tell that it is ready."""

    key: str  # "A" .. "D", or a name of a phase's own (the RSS run)
    label: str
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    port: int
    log_path: Path
    ready_path: str = "/healthz"  # GET until 200; "" means POST ready_body to /graphql
    ready_body: bytes = b""
    process: subprocess.Popen[bytes] | None = None
    start_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/graphql"

    @property
    def pid(self) -> int:
        assert self.process is not None, f"{self.key} is not running"
        return self.process.pid

    def start(self, timeout: float = 120.0) -> None:
        """Spawn the server and wait until it answers, or fail with the end of its log."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        spawned = time.monotonic()
        with self.log_path.open("wb") as out:
            self.process = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=self.cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent,
            )
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.label} exited with {self.process.returncode} at start:\n"
                    + self.log_tail()
                )
            if time.monotonic() - spawned > timeout:
                self.stop()
                raise RuntimeError(
                    f"{self.label} did not answer within {timeout:.0f} s:\n" + self.log_tail()
                )
            if self._answers():
                break
            time.sleep(0.1)
        self.start_seconds = time.monotonic() - spawned

    def _answers(self) -> bool:
        base = f"http://127.0.0.1:{self.port}"
        try:
            if self.ready_path:
                request = urllib.request.Request(base + self.ready_path)
            else:
                request = urllib.request.Request(
                    self.url,
                    data=self.ready_body,
                    headers={"Content-Type": "application/json"},
                    method="POST",
                )
            with urllib.request.urlopen(request, timeout=2) as response:
                return int(response.status) == 200
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def log_problems(self) -> list[str]:
        """What the server complained about: each log line at WARNING or above, and each
        traceback by its last exception line (``app.errors.StoreUnavailable: ...``), counted
        and most frequent first."""
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return []
        found: Counter[str] = Counter()
        pending: str | None = None  # the exception line of the traceback being read
        chained = False  # the next traceback continues this one ("The above exception ...")
        for line in [*text.splitlines(), "END"]:
            if line.startswith(("The above exception", "During handling of the above")):
                chained = True
            elif line.startswith("Traceback"):
                if not chained and pending is not None:
                    found[pending] += 1
                pending, chained = None, False
            elif line.startswith(("WARNING", "ERROR", "CRITICAL", "END")):
                if pending is not None:
                    found[pending] += 1
                pending, chained = None, False
                if line != "END":
                    found[line.strip()[:200]] += 1
            elif EXCEPTION_LINE.match(line):
                pending = line.strip()[:200]
        return [f"{n} x {line}" for line, n in found.most_common()]

    def cpu_seconds(self) -> float:
        return tree_cpu_seconds(self.pid)

    def rss_bytes(self) -> int:
        return tree_rss_bytes(self.pid)


def snapshot_code(target: Path) -> Path:
    """Copy the app's packages (and the floor) to ``target``; servers run from there."""
    if target.exists():
        shutil.rmtree(target)
    for top in CODE_DIRS:
        shutil.copytree(ROOT / top, target / top, ignore=shutil.ignore_patterns("__pycache__"))
    (target / "bench").mkdir(parents=True)
    shutil.copy2(Path(__file__).resolve().parent / "floor_app.py", target / "bench")
    return target


def code_fingerprint(root: Path) -> str:
    """A hash of every Python file the servers import from ``root``."""
    digest = hashlib.sha256()
    for top in (*CODE_DIRS, "bench/floor_app.py"):
        path = root / top
        files = [path] if path.is_file() else sorted(path.rglob("*.py"))
        for file in files:
            digest.update(str(file.relative_to(root)).encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def clean_env(**updates: str) -> dict[str, str]:
    """This process's environment without any store, app or telemetry setting, plus
    ``updates``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(
            (
                "DATABASE_URL",
                "REDIS_URL",
                "PGVECTOR_URL",
                "CHIMERA_",
                "WEAVIATE",
                "S3_",
                "AWS_",
                "OTEL_",
            )
        )
        and k not in {"PYTHONPATH", "NODE_OPTIONS"}
    }
    env.update(updates)
    return env


def app_env(
    *,
    database_url: str,
    pgvector_url: str,
    redis_url: str,
    secret: str,
    data_dir: Path,
    port: int,
    code_root: Path,
    **extra: str,
) -> dict[str, str]:
    """The environment of one of our app's servers in a bench, plus ``extra``."""
    return clean_env(
        DATABASE_URL=database_url,
        PGVECTOR_URL=pgvector_url,
        REDIS_URL=redis_url,
        CHIMERA_ENV="production",
        CHIMERA_AUTH_SECRET=secret,
        CHIMERA_DATA_DIR=str(data_dir),
        CHIMERA_PUBLIC_URL=f"http://127.0.0.1:{port}",
        # Background work that a dashboard read never triggers, off so that it adds no CPU or
        # statements to what is measured: the outbox relay and indexer (nothing is written
        # during the run) and the media sweeper.
        CHIMERA_INDEXER="false",
        CHIMERA_RELAY="false",
        CHIMERA_MEDIA_SWEEP_SECONDS="0",
        # The shared caches off: a run repeats one request, and a warm cache would measure
        # Redis lookups in place of the vector search every first request pays
        # (bench/search_cache.py measures the caches, cold and warm).
        CHIMERA_SIMILAR_CACHE_SECONDS="0",
        CHIMERA_EMBEDDING_CACHE_SECONDS="0",
        # No access line per request, as uvicorn runs with --no-access-log: a bench measures
        # serving, not writing logs.
        CHIMERA_ACCESS_LOG="false",
        PYTHONPATH=str(code_root),
        **extra,
    )


def uvicorn_argv(factory: str, port: int) -> list[str]:
    """Identical uvicorn settings for the app and the floor: one worker, uvloop and httptools
    (uvicorn's defaults when installed, named here so a missing one fails loudly), no access
    log (a line per request would be measured too), warnings and errors only."""
    return [
        sys.executable,
        "-m",
        "uvicorn",
        factory,
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--log-level",
        "warning",
    ]


# --------------------------------------------------------------------------------------------
# PostGraphile


@dataclass
class NodeInstall:
    directory: Path
    cli: Path
    version: str
    node_version: str
    installed_now: bool
    seconds: float


def install_postgraphile(log: Callable[[str], None]) -> NodeInstall:
    """``npm ci`` the pinned PostGraphile into a cache folder named by the lock file's hash
    (tests/node_packages.py): installed once per lock file, reused by every later run."""
    missing = node_missing()
    if missing is not None:
        raise FileNotFoundError(missing)
    node = str(shutil.which("node"))
    started = time.monotonic()
    directory, installed_now = npm_installed(POSTGRAPHILE_DIR, CACHE, "postgraphile", log)
    cli = directory / "node_modules" / "postgraphile" / "cli.js"
    if not cli.exists():
        raise RuntimeError(f"npm ci left no {cli}")
    package = json.loads((directory / "node_modules" / "postgraphile" / "package.json").read_text())
    node_version = subprocess.run(
        [node, "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    return NodeInstall(
        directory=directory,
        cli=cli,
        version=str(package["version"]),
        node_version=node_version,
        installed_now=installed_now,
        seconds=time.monotonic() - started,
    )


def postgraphile_argv(install: NodeInstall, connection: str, port: int) -> list[str]:
    """PostGraphile 4 as one would run it in production, on one Node.js process.

    No GraphiQL, no query log, no watch, no mutations (the benchmark reads), relay
    connections only, no legacy relation names; pool of 10 like the app's. No JWT: it has
    no notion of our tokens, so it answers without checking one and filters by tenant through
    `condition` instead. That is less work than B does, which only makes A harder to beat.
    """
    node = shutil.which("node")
    assert node is not None
    return [
        node,
        str(install.cli),
        "--connection",
        connection,
        "--schema",
        "public",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--max-pool-size",
        "10",
        "--disable-graphiql",
        "--disable-query-log",
        "--disable-default-mutations",
        "--simple-collections",
        "omit",
        "--legacy-relations",
        "omit",
        "--no-setof-functions-contain-nulls",
    ]
