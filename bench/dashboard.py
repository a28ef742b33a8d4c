"""The dashboard query side by side: PostGraphile 4, our app (two shapes) and a hand-written floor.

Run: ``make bench`` (or ``.venv/bin/python bench/dashboard.py --help``). One run, on this
machine, on loopback only, measures four setups over the same embedded PostgreSQL and the
same data (one tenant, 1,000 campaigns, 200 agents, 5 agents and 4 READY media per
campaign, engagement counters and agents' task counts in Redis, a vector per campaign):

  A  PostGraphile 4 (npm, pinned in bench/postgraphile/) over the same tables;
  B  our app, the relational shape (campaigns, their agents and media);
  C  our app, the full dashboard (B plus engagement, activeTasks, media URLs, similar);
  D  the floor: B's three SQL statements by hand (asyncpg + orjson, raw ASGI, bench/floor_app.py).

Every server is one process (uvicorn with one worker, or one Node.js process) on a port of
its own. Before measuring, the bench checks the answers: D's must equal B's, A's rows must
be B's rows in B's order, C's must carry every store's part. Then wrk loads each setup in
turn (A, B, C, D, A, B, ... so that drift on a shared machine hits all alike) and the bench
reports req/s, latency, CPU per request of the server and of PostgreSQL, store calls per
request at page sizes 10, 50 and 100, RSS, and the RSS of a fresh app after 1,000 and
10,000 requests. It writes a dated table into docs/benchmarks.md ("Dashboard query: side by
side with PostGraphile") and the raw numbers as JSON under .chimera-bench/results/.

Where Node.js is missing it runs B, C and D and says so. It needs wrk on PATH
(``apt-get install wrk``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import importlib.util
import json
import logging
import math
import os
import platform
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

# Run as a script, Python puts bench/ first on sys.path; the checkout's own app package must
# come right after it, before any installed copy.
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

from dashboard_measure import (
    RoundResult,
    RssDrift,
    StoreCalls,
    StoreCounter,
    add_load_arguments,
    measure_round,
    post,
    rss_drift,
    run_wrk,
    wrk_version,
)
from dashboard_queries import PAGE_SIZE, QUERY_A, QUERY_B, QUERY_C, QUERY_E, request_body
from dashboard_report import Report, print_report, write_docs
from dashboard_seed import (
    FULL,
    METRIC_DAY,
    SMOKE,
    Dataset,
    Engines,
    seed,
    server_version,
    start_engines,
)
from dashboard_servers import (
    NodeInstall,
    Server,
    app_env,
    clean_env,
    code_fingerprint,
    free_port,
    install_postgraphile,
    postgraphile_argv,
    snapshot_code,
    uvicorn_argv,
)

from app.auth import Role, mint_token
from app.ids import decode_any

ROOT = Path(__file__).resolve().parent.parent
SETUPS = ("A", "B", "C", "D", "E")
LABELS = {
    "A": "A PostGraphile 4",
    "B": "B ours, relational",
    "C": "C ours, full dashboard",
    "D": "D floor (asyncpg + orjson)",
    "E": "E ours, C + money, metrics, history",
}
# Query E's window: the seeded day, as 24 hourly points.
E_WINDOW = {
    "from": METRIC_DAY.isoformat(),
    "to": (METRIC_DAY + timedelta(days=1)).isoformat(),
}
PAGE_SIZES = (10, 50, 100)
log = logging.getLogger("bench.dashboard")


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def signals_as_exit() -> Iterator[None]:
    """SIGTERM (like Ctrl-C) unwinds through every ``finally``: servers and engines stop."""

    def handler(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# --------------------------------------------------------------------------------------------
# Answer checks: every setup must answer the same thing before its speed means anything


@dataclass
class Check:
    setup: str
    ok: bool
    detail: str
    differences: list[str] = field(default_factory=list)


def _diff(left: Any, right: Any, path: str = "$", limit: int = 10) -> list[str]:
    """Where two parsed JSON values differ, as paths, at most ``limit`` of them."""
    out: list[str] = []
    if isinstance(left, dict) and isinstance(right, dict):
        for key in list(left) + [k for k in right if k not in left]:
            if key not in left or key not in right:
                out.append(f"{path}.{key}: only in {'B' if key in left else 'D'}")
            else:
                out.extend(_diff(left[key], right[key], f"{path}.{key}", limit - len(out)))
            if len(out) >= limit:
                break
    elif isinstance(left, list) and isinstance(right, list):
        if len(left) != len(right):
            out.append(f"{path}: {len(left)} items in B, {len(right)} in D")
        for n, (a, b) in enumerate(zip(left, right, strict=False)):
            out.extend(_diff(a, b, f"{path}[{n}]", limit - len(out)))
            if len(out) >= limit:
                break
    elif left != right:
        out.append(f"{path}: B {left!r} != D {right!r}")
    return out[:limit]


def _pk(global_id: str) -> str:
    return str(decode_any(global_id)[1])


def shape_of_b(answer: dict[str, Any]) -> list[tuple[str, list[str], list[str]]]:
    """(campaign, its agents, its media) as uuids, in order, from an answer of B or C."""
    return [
        (
            _pk(e["node"]["id"]),
            [_pk(a["node"]["id"]) for a in e["node"]["agents"]["edges"]],
            [_pk(m["node"]["id"]) for m in e["node"]["media"]["edges"]],
        )
        for e in answer["data"]["campaigns"]["edges"]
    ]


def shape_of_a(answer: dict[str, Any]) -> list[tuple[str, list[str], list[str]]]:
    return [
        (
            e["node"]["id"],
            [
                a["node"]["agentByTenantIdAndAgentId"]["id"]
                for a in e["node"]["campaignAgentsByTenantIdAndCampaignId"]["edges"]
            ],
            [m["node"]["id"] for m in e["node"]["mediaAssetsByTenantIdAndCampaignId"]["edges"]],
        )
        for e in answer["data"]["allCampaigns"]["edges"]
    ]


def check_answers(servers: dict[str, Server], bodies: dict[str, bytes], token: str) -> list[Check]:
    checks: list[Check] = []
    answers: dict[str, dict[str, Any]] = {}
    for key, server in servers.items():
        try:
            answers[key] = post(server.url, bodies[key], token if key != "A" else "")
        except Exception as exc:
            checks.append(Check(key, False, f"no answer: {type(exc).__name__}: {exc}"))
            continue
        if answers[key].get("errors"):
            first = answers[key]["errors"][0]
            checks.append(Check(key, False, f"GraphQL errors, first: {first.get('message')}"))
            answers.pop(key)
    b = answers.get("B")
    if b is not None:
        shape = shape_of_b(b)
        agents = sum(len(s[1]) for s in shape)
        media = sum(len(s[2]) for s in shape)
        checks.append(Check("B", True, f"{len(shape)} campaigns, {agents} agents, {media} media"))
    if "D" in answers:
        if "B" not in servers:
            checks.append(Check("D", True, "not compared: B is not part of this run"))
        elif b is None:
            checks.append(Check("D", False, "B did not answer: nothing to compare with"))
        else:
            # The data, that is: B's extensions (what it cost) are work the floor skips.
            differences = _diff(b.get("data"), answers["D"].get("data"))
            checks.append(
                Check(
                    "D",
                    not differences,
                    "identical to B's answer" if not differences else "DIFFERS from B's answer",
                    differences,
                )
            )
    if "A" in answers:
        if "B" not in servers:
            checks.append(Check("A", True, "not compared: B is not part of this run"))
        elif b is None:
            checks.append(Check("A", False, "B did not answer: nothing to compare with"))
        else:
            same = shape_of_a(answers["A"]) == shape_of_b(b)
            checks.append(
                Check(
                    "A",
                    same,
                    "same campaigns, agents and media as B, in the same order"
                    if same
                    else "DIFFERENT rows or order than B",
                )
            )
    if "C" in answers:
        checks.append(_check_c(answers["C"], b))
    if "E" in answers:
        checks.append(_check_e(answers["E"], b))
    return checks


def _check_e(answer: dict[str, Any], b: dict[str, Any] | None) -> Check:
    edges = answer["data"]["campaigns"]["edges"]
    problems = []
    if b is not None and shape_of_b(answer) != shape_of_b(b):
        problems.append("rows differ from B's")
    if answer["data"]["campaignStats"]["total"] < len(edges):
        problems.append("campaignStats counts fewer campaigns than the page")
    for e in edges:
        node = e["node"]
        if len(node["metrics"]) != 24 or not any(p["clicks"] for p in node["metrics"]):
            problems.append(f"not 24 hourly points with clicks for {node['id']}")
        if len(node["history"]["edges"]) != 5:
            problems.append(f"{len(node['history']['edges'])} history entries for {node['id']}")
        if len(node["transactions"]["edges"]) != 3 or node["spent"] == "0.00":
            problems.append(f"no spend for {node['id']}")
        if len(node["similar"]) != 3 or node["engagement"] is None:
            problems.append(f"no similar campaigns or engagement for {node['id']}")
    if problems:
        return Check("E", False, f"{len(problems)} problems, first: {problems[0]}", problems[:10])
    return Check(
        "E",
        True,
        f"{len(edges)} campaigns, each with C's fields, spend, 24 hourly points, 5 history "
        "entries, 3 transactions; campaignStats",
    )


def _check_c(answer: dict[str, Any], b: dict[str, Any] | None) -> Check:
    edges = answer["data"]["campaigns"]["edges"]
    problems = []
    if b is not None and shape_of_b(answer) != shape_of_b(b):
        problems.append("rows differ from B's")
    for e in edges:
        node = e["node"]
        if node["engagement"] is None or node["engagement"]["impressions"] <= 0:
            problems.append(f"no engagement for {node['id']}")
        if any(a["node"]["activeTasks"] is None for a in node["agents"]["edges"]):
            problems.append(f"an agent without activeTasks in {node['id']}")
        if any(not m["node"]["url"] for m in node["media"]["edges"]):
            problems.append(f"a media without url in {node['id']}")
        if len(node["similar"]) != 3:
            problems.append(f"{len(node['similar'])} similar campaigns for {node['id']}")
    if problems:
        return Check("C", False, f"{len(problems)} problems, first: {problems[0]}", problems[:10])
    return Check(
        "C",
        True,
        f"{len(edges)} campaigns, each with engagement, activeTasks, media URLs, 3 similar",
    )


# --------------------------------------------------------------------------------------------
# The run


@dataclass
class Config:
    dataset: Dataset
    setups: tuple[str, ...]
    duration: float
    rounds: int
    connections: int
    threads: int
    warmup: float
    count_requests: int
    rss_checkpoints: tuple[int, int]
    rss_time_limit: float
    smoke: bool
    write_docs: bool
    data_dir: Path
    snapshot: bool


def parse_args(argv: list[str] | None = None) -> Config:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_load_arguments(parser)
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of load per setup first")
    parser.add_argument(
        "--only",
        default="A,B,C,D,E",
        help="setups to run, comma-separated, of A,B,C,D,E",
    )
    parser.add_argument(
        "--count-requests", type=int, default=5, help="requests per page size for store calls"
    )
    parser.add_argument(
        "--rss-requests",
        default="1000,10000",
        help="RSS of a fresh app (query C) after this many requests, then this many; '0' skips",
    )
    parser.add_argument(
        "--rss-time-limit", type=float, default=300.0, help="at most this long for the RSS run"
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="tiny and quick (150 campaigns, 2 s, 1 round, RSS at 100 and 300, no docs); "
        "exits 1 if any setup answers wrongly or with errors: for CI",
    )
    parser.add_argument("--no-write", action="store_true", help="do not touch docs/benchmarks.md")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=ROOT / ".chimera-bench",
        help="engines, seeded data, logs and results (reused across runs)",
    )
    parser.add_argument(
        "--no-snapshot",
        action="store_true",
        help="serve the checkout itself instead of a copy of the app's code taken at the start",
    )
    args = parser.parse_args(argv)
    setups = tuple(s for s in SETUPS if s in {x.strip().upper() for x in args.only.split(",")})
    problems = []
    if not setups:
        problems.append("--only names none of A,B,C,D,E")
    if not 0 < args.duration <= 120 or not 1 <= args.rounds <= 10:
        problems.append("--duration must be in (0, 120] and --rounds in 1..10")
    if not 1 <= args.connections <= 256 or not 1 <= args.threads <= args.connections:
        problems.append("--connections must be 1..256 and --threads 1..connections")
    try:
        rss = tuple(int(x) for x in args.rss_requests.split(","))
    except ValueError:
        rss = ()
    if rss != (0,) and (len(rss) != 2 or not 0 < rss[0] < rss[1] <= 100_000):
        problems.append("--rss-requests must be 'N,M' with 0 < N < M <= 100000, or '0'")
    if problems:
        parser.error("; ".join(problems))
    if args.smoke:
        return Config(
            dataset=SMOKE,
            setups=setups,
            duration=2.0,
            rounds=1,
            # A correctness run: few connections, so a busy CI machine cannot push a store
            # call past its timeout and fail it for load rather than for a wrong answer.
            connections=min(args.connections, 4),
            threads=args.threads,
            warmup=1.0,
            count_requests=2,
            rss_checkpoints=(100, 300) if rss != (0,) else (0, 0),
            rss_time_limit=30.0,
            smoke=True,
            write_docs=False,
            data_dir=args.data_dir,
            snapshot=not args.no_snapshot,
        )
    return Config(
        dataset=FULL,
        setups=setups,
        duration=args.duration,
        rounds=args.rounds,
        connections=args.connections,
        threads=args.threads,
        warmup=args.warmup,
        count_requests=args.count_requests,
        rss_checkpoints=(rss[0], rss[1]) if rss != (0,) else (0, 0),
        rss_time_limit=args.rss_time_limit,
        smoke=False,
        write_docs=not args.no_write,
        data_dir=args.data_dir,
        snapshot=not args.no_snapshot,
    )


def auth_secret(data_dir: Path) -> str:
    """The bench's signing secret, kept beside its data so tokens survive reruns."""
    path = data_dir / "auth_secret"
    if not path.exists():
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


class Bench:
    """Owns every process of a run; :meth:`close` stops them all, whatever happened."""

    def __init__(self, config: Config, runner: asyncio.Runner) -> None:
        self.config = config
        self.runner = runner
        self.data_dir = config.data_dir.resolve()
        self.run_dir = self.data_dir / "run"
        self.engines: Engines | None = None
        self.servers: dict[str, Server] = {}
        self.extra: list[Server] = []
        self.code_root = ROOT
        self.notes: list[str] = []

    def close(self) -> None:
        for server in [*self.servers.values(), *self.extra]:
            with contextlib.suppress(Exception):
                server.stop()
        if self.engines is not None:
            with contextlib.suppress(Exception):
                self.engines.stop()
        if self.code_root != ROOT:
            shutil.rmtree(self.code_root, ignore_errors=True)

    # -- servers ---------------------------------------------------------------------------

    def app_server(self, key: str, label: str, secret: str) -> Server:
        assert self.engines is not None
        port = free_port()
        env = app_env(
            database_url=self.engines.sqlalchemy_url(self.config.dataset.database),
            pgvector_url=self.engines.sqlalchemy_url(self.config.dataset.vector_database),
            redis_url=self.engines.redis_url,
            secret=secret,
            data_dir=self.data_dir / "app-data",
            port=port,
            code_root=self.code_root,
        )
        return Server(
            key=key,
            label=label,
            argv=uvicorn_argv("app.main:create_app", port),
            env=env,
            cwd=self.code_root,
            port=port,
            log_path=self.run_dir / f"server-{key}.log",
        )

    def floor_server(self, secret: str) -> Server:
        assert self.engines is not None
        port = free_port()
        env = clean_env(
            DATABASE_URL=self.engines.sqlalchemy_url(self.config.dataset.database),
            CHIMERA_AUTH_SECRET=secret,
            PYTHONPATH=str(self.code_root),
        )
        return Server(
            key="D",
            label=LABELS["D"],
            argv=uvicorn_argv("bench.floor_app:create_app", port),
            env=env,
            cwd=self.code_root,
            port=port,
            log_path=self.run_dir / "server-D.log",
        )

    def postgraphile_server(self, install: NodeInstall) -> Server:
        assert self.engines is not None
        port = free_port()
        return Server(
            key="A",
            label=LABELS["A"],
            argv=postgraphile_argv(
                install, self.engines.libpq_url(self.config.dataset.database), port
            ),
            env=clean_env(NODE_ENV="production"),
            cwd=install.directory,
            port=port,
            log_path=self.run_dir / "server-A.log",
            ready_path="",
            ready_body=b'{"query":"{ __typename }"}',
        )

    # -- phases ----------------------------------------------------------------------------

    def run(self) -> Report:
        config = self.config
        started = time.monotonic()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        report = Report(config=_config_dict(config), started_at=datetime.now(UTC).isoformat())
        report.code = {"head": _git("rev-parse", "--short", "HEAD")}
        report.code["modified"] = _git(
            "status", "--short", "--", "app", "loaders", "resolvers", "migrations"
        ).splitlines()
        if config.snapshot:
            self.code_root = snapshot_code(self.data_dir / f"code-{os.getpid()}")
        report.code["sha256"] = code_fingerprint(self.code_root)
        report.code["snapshot"] = config.snapshot

        say(f"engines: embedded PostgreSQL and Redis in {self.data_dir}")
        self.engines = engines = start_engines(self.data_dir)
        seeded = self.runner.run(seed(engines, config.dataset))
        say(
            f"dataset {seeded.database}: "
            + ("reused" if seeded.reused else f"seeded in {seeded.seconds:.1f} s")
            + f" ({', '.join(f'{n} {t}' for t, n in seeded.rows.items())})"
        )
        report.dataset = asdict(seeded)
        counter = StoreCounter(
            engines.socket_dir,
            {config.dataset.database: "postgres", config.dataset.vector_database: "pgvector"},
            engines.redis_url,
        )
        self.runner.run(counter.open())
        try:
            redis_pid = self.runner.run(counter.redis_pid())
            report.machine = machine_info(self.runner.run(server_version(engines.socket_dir)))
            return self._measure(report, counter, redis_pid, started)
        finally:
            self.runner.run(counter.close())

    def _measure(
        self, report: Report, counter: StoreCounter, redis_pid: int, started: float
    ) -> Report:
        config = self.config
        assert self.engines is not None
        dataset = config.dataset
        secret = auth_secret(self.data_dir)
        token = mint_token(
            secret,
            tenant_id=dataset.tenant_id,
            tenant_slug=dataset.tenant_slug,
            role=Role.VIEWER,
            subject="bench",
            ttl_seconds=6 * 3600,
        )
        setups = list(config.setups)
        install: NodeInstall | None = None
        if "A" in setups:
            try:
                install = install_postgraphile(say)
                report.machine["postgraphile"] = install.version
                report.machine["node"] = install.node_version
            except (FileNotFoundError, RuntimeError, subprocess.TimeoutExpired) as exc:
                # No Node.js, or npm could not install (offline): the rest still runs.
                setups.remove("A")
                why = (
                    "Node.js/npm not found"
                    if isinstance(exc, FileNotFoundError)
                    else f"PostGraphile could not be installed ({str(exc).splitlines()[0]})"
                )
                note = f"{why}: PostGraphile (A) not run; B, C and D only."
                self.notes.append(note)
                say("NOTE: " + note)

        def body(key: str, first: int) -> bytes:
            if key == "A":
                return request_body(QUERY_A, {"tenantId": str(dataset.tenant_id), "first": first})
            if key == "E":
                return request_body(QUERY_E, {"first": first, **E_WINDOW})
            return request_body(QUERY_C if key == "C" else QUERY_B, {"first": first})

        bodies = {key: body(key, PAGE_SIZE) for key in setups}
        body_files = {}
        for key, data in bodies.items():
            body_files[key] = self.run_dir / f"body-{key}.json"
            body_files[key].write_bytes(data)

        start_failures: list[Check] = []
        for key in setups:
            if key == "A":
                assert install is not None
                server = self.postgraphile_server(install)
            elif key == "D":
                server = self.floor_server(secret)
            else:
                server = self.app_server(key, LABELS[key], secret)
            say(f"starting {server.label} on 127.0.0.1:{server.port}")
            try:
                server.start()
            except RuntimeError as exc:
                # The others are still worth measuring; the failure is reported and fails
                # the exit status.
                say(f"{server.label} did not start:\n{exc}")
                start_failures.append(
                    Check(key, False, f"did not start: {str(exc).splitlines()[0]}")
                )
                continue
            self.servers[key] = server
        report.servers = {
            k: {"argv": _shown_argv(s.argv), "start_s": s.start_seconds, "pid": s.pid}
            for k, s in self.servers.items()
        }

        checks = start_failures + check_answers(self.servers, bodies, token)
        report.checks = [asdict(c) for c in checks]
        for check in checks:
            say(f"check {check.setup}: {'ok' if check.ok else 'FAILED'}: {check.detail}")
            for difference in check.differences:
                say(f"    {difference}")
        failed = {c.setup for c in checks if not c.ok and c.setup != "D"}
        # D answering differently from B is reported, not fatal: its speed is still a floor.
        for key in failed & set(self.servers):
            say(f"{LABELS[key]} does not answer correctly: not measured")
            self.servers.pop(key).stop()
        if not self.servers:
            raise RuntimeError("no setup answered correctly")

        say("store calls per request at page sizes " + ", ".join(map(str, PAGE_SIZES)))
        for key, server in self.servers.items():
            tok = token if key != "A" else ""
            per_size: dict[int, StoreCalls] = {}
            for size in PAGE_SIZES:
                per_size[size] = self.runner.run(
                    counter.count(server.url, body(key, size), tok, config.count_requests)
                )
            report.store_calls[key] = {str(s): c.as_dict() for s, c in per_size.items()}
            say(f"  {key}: " + "; ".join(f"{s}: {_calls_text(c)}" for s, c in per_size.items()))

        rss_at_start = {k: s.rss_bytes() for k, s in self.servers.items()}
        say(f"warm-up: {config.warmup:.0f} s of load per setup")
        for key, server in self.servers.items():
            warm = run_wrk(
                server.url,
                body_files[key],
                token if key != "A" else "",
                duration=config.warmup,
                connections=config.connections,
                threads=config.threads,
            )
            report.warmups[key] = asdict(warm)
            if warm.problems:
                # Not in the table, but a server that fails while warming up is news too.
                note = f"warm-up of {key} (not measured): {', '.join(warm.problems)}"
                self.notes.append(note)
                say("NOTE: " + note)
        rounds: list[RoundResult] = []
        for number in range(1, config.rounds + 1):
            for key, server in self.servers.items():
                result = measure_round(
                    server,
                    key,
                    number,
                    postmaster_pid=self.engines.postmaster_pid,
                    redis_pid=redis_pid,
                    body_file=body_files[key],
                    token=token if key != "A" else "",
                    duration=config.duration,
                    connections=config.connections,
                    threads=config.threads,
                )
                rounds.append(result)
                flag = "" if result.ok else "  PROBLEMS: " + ", ".join(result.wrk.problems)
                say(
                    f"round {number} {key}: {result.wrk.rps:7.1f} req/s  "
                    f"p50 {result.wrk.p50_ms:6.1f} ms  p99 {result.wrk.p99_ms:6.1f} ms  "
                    f"app {result.app_cpu_ms:5.2f} ms/req  pg {result.pg_cpu_ms:5.2f} ms/req  "
                    f"others {result.other_cpu_cores:.2f} cores{flag}"
                )
        report.rounds = [_round_dict(r) for r in rounds]
        report.rss_at_start = rss_at_start
        for key, server in self.servers.items():
            problems = server.log_problems()
            if problems:
                report.server_log_problems[key] = problems[:20]
                say(f"{key}'s log: {'; '.join(problems[:3])}")
            if not server.running():
                report.server_log_problems.setdefault(key, []).append("exited during the run")

        if config.rss_checkpoints[0] and "C" in self.servers:
            for server in self.servers.values():
                server.stop()  # idle, but the RSS run should have the machine to itself
            fresh = self.app_server("C-rss", "C ours, full dashboard (fresh, for RSS)", secret)
            self.extra.append(fresh)
            say(
                f"RSS: a fresh app (query C) to {config.rss_checkpoints[1]:,} requests "
                f"(at most {config.rss_time_limit:.0f} s)"
            )
            fresh.start()
            drift = rss_drift(
                fresh,
                body_files["C"],
                token,
                checkpoints=config.rss_checkpoints,
                connections=config.connections,
                time_limit=config.rss_time_limit,
            )
            fresh.stop()
            report.rss_drift = _drift_dict(drift)
            say(
                "RSS: "
                + ", ".join(f"{n:,} req {b / 2**20:.1f} MiB" for n, b in drift.rss_after.items())
                + (f"; ratio {drift.ratio:.3f}" if not math.isnan(drift.ratio) else "")
                + (f"; {', '.join(drift.problems)}" if drift.problems else "")
            )
        report.notes = self.notes
        report.total_s = time.monotonic() - started
        report.finished_at = datetime.now(UTC).isoformat()
        report.code["changed_during_run"] = (
            not self.config.snapshot and code_fingerprint(ROOT) != report.code["sha256"]
        )
        return report


# --------------------------------------------------------------------------------------------
# Small helpers


def _git(*argv: str) -> str:
    done = subprocess.run(["git", *argv], cwd=ROOT, capture_output=True, text=True, check=False)
    return done.stdout.strip()


def _shown_argv(argv: list[str]) -> list[str]:
    """The command line as the report shows it: the checkout as ``.``, the home as ``~``."""
    home = str(Path.home())
    return [a.replace(str(ROOT), ".").replace(home, "~") for a in argv]


def _calls_text(calls: StoreCalls) -> str:
    return (
        f"pg {calls.postgres:g} (+{calls.postgres_tx:g} tx), "
        f"pgvector {calls.pgvector:g} (+{calls.pgvector_tx:g} tx), redis {calls.redis:g}"
    )


def _round_dict(result: RoundResult) -> dict[str, Any]:
    data = asdict(result)
    data["ok"] = result.ok
    data["problems"] = result.wrk.problems
    return data


def _drift_dict(drift: RssDrift) -> dict[str, Any]:
    return {
        "rss_start": drift.rss_start,
        "rss_after": {str(n): b for n, b in drift.rss_after.items()},
        "ratio": drift.ratio,
        "problems": drift.problems,
        "seconds": drift.seconds,
    }


def _config_dict(config: Config) -> dict[str, Any]:
    data = asdict(config)
    data["dataset"] = asdict(config.dataset)
    data["data_dir"] = str(config.data_dir)
    return data


def machine_info(postgres_version: str) -> dict[str, Any]:
    from importlib.metadata import version

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "unknown",
    )
    info: dict[str, Any] = {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "postgresql": postgres_version,
        "wrk": wrk_version(),
        "kernel": platform.release(),
    }
    for package in ("uvicorn", "strawberry-graphql", "asyncpg", "sqlalchemy", "orjson", "redis"):
        with contextlib.suppress(Exception):
            info[package] = version(package)
    return info


def summarise(report: Report) -> None:
    """Per-setup medians and the two target ratios, from this run's rounds only."""
    by_setup: dict[str, list[dict[str, Any]]] = {}
    for r in report.rounds:
        by_setup.setdefault(r["setup"], []).append(r)
    for key, rounds in by_setup.items():
        clean = [r for r in rounds if r["ok"]]
        use = clean or rounds
        rps = [r["wrk"]["rps"] for r in use]
        report.summary[key] = {
            "rounds": len(rounds),
            "rounds_with_problems": len(rounds) - len(clean),
            "problems": sorted({p for r in rounds for p in r["problems"]}),
            "rps": statistics.median(rps),
            "rps_min": min(rps),
            "rps_max": max(rps),
            "p50_ms": statistics.median(r["wrk"]["p50_ms"] for r in use),
            "p99_ms": statistics.median(r["wrk"]["p99_ms"] for r in use),
            "app_cpu_ms": statistics.median(r["app_cpu_ms"] for r in use),
            "pg_cpu_ms": statistics.median(r["pg_cpu_ms"] for r in use),
            "redis_cpu_ms": statistics.median(r["redis_cpu_ms"] for r in use),
            "rss_before": rounds[0]["rss_before"],
            "rss_after": rounds[-1]["rss_after"],
            "other_cpu_cores": statistics.median(r["other_cpu_cores"] for r in rounds),
        }
    s = report.summary
    if "A" in s and "B" in s and s["A"]["rps"]:
        report.targets["b_over_a_rps"] = s["B"]["rps"] / s["A"]["rps"]
    if "C" in s and "D" in s and s["D"]["app_cpu_ms"]:
        report.targets["c_over_d_app_cpu"] = s["C"]["app_cpu_ms"] / s["D"]["app_cpu_ms"]
    if report.rss_drift:
        report.targets["rss_10k_over_1k"] = report.rss_drift["ratio"]
    flat: dict[str, list[str]] = {}
    for key, sizes in report.store_calls.items():
        for store in ("postgres", "postgres_tx", "pgvector", "pgvector_tx", "redis"):
            values = {sizes[size][store] for size in sizes}
            if len(values) > 1:
                flat.setdefault(key, []).append(store)
    report.store_calls_vary = flat


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("bench.dashboard").setLevel(logging.INFO)
    config = parse_args(argv)
    if shutil.which("wrk") is None:
        print(
            "wrk is not on PATH: install wrk: apt-get install wrk (Debian's package)",
            file=sys.stderr,
        )
        return 2
    if importlib.util.find_spec("orjson") is None:
        print("orjson is missing (the floor's encoder): pip install orjson", file=sys.stderr)
        return 2
    config.data_dir.mkdir(parents=True, exist_ok=True)
    with (
        (config.data_dir / ".lock").open("w") as lock,
        signals_as_exit(),
        asyncio.Runner() as runner,
    ):
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"another run is using {config.data_dir}; wait for it", file=sys.stderr)
            return 2
        bench = Bench(config, runner)
        try:
            report = bench.run()
        finally:
            bench.close()
    summarise(report)
    results_dir = config.data_dir.resolve() / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    json_path = results_dir / f"dashboard-{'smoke-' if config.smoke else ''}{stamp}.json"
    json_path.write_text(json.dumps(asdict(report), indent=2, default=str))
    print_report(report, LABELS)
    say(f"raw results: {json_path}")
    if config.write_docs:
        docs = ROOT / "docs" / "benchmarks.md"
        write_docs(
            docs,
            report,
            LABELS,
            json_path.relative_to(ROOT) if json_path.is_relative_to(ROOT) else json_path,
        )
        say(f"wrote the results into {docs.relative_to(ROOT)}")
    failed_checks = [c for c in report.checks if not c["ok"]]
    failed_rounds = [k for k, v in report.summary.items() if v["rounds_with_problems"]]
    missing = [k for k in config.setups if k not in report.summary and k not in ("A",)]
    if config.smoke and (failed_checks or failed_rounds or missing):
        say(
            "smoke: FAILED ("
            + ", ".join(
                [f"check {c['setup']}" for c in failed_checks]
                + [f"errors under load in {k}" for k in failed_rounds]
                + [f"{k} not measured" for k in missing]
            )
            + ")"
        )
        return 1
    if any(c["setup"] != "D" for c in failed_checks) or missing:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
