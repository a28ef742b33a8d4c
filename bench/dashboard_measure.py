"""Measuring one setup: load with wrk, CPU and memory from outside, store calls from the stores.

- Load: wrk (``-t2 -c16 --latency``) with ``bench/wrk/post.lua``, which POSTs one GraphQL
  body with a bearer token, counts answers that carry GraphQL ``errors`` (HTTP 200 with
  errors is still a failure), and prints its summary as one JSON line: requests, duration,
  latency percentiles in microseconds, socket errors and non-2xx answers.
- CPU per request: user + system seconds of the server's process tree, and of PostgreSQL's
  postmaster with every backend (dead ones included), over the round, divided by the
  requests wrk completed.
- Store calls: PostgreSQL statements from ``pg_stat_statements`` (every statement executed
  in the dataset's database, exactly, whoever sent it), Redis commands from
  ``MONITOR`` (commands clients send, per name, not those a script runs inside Redis; this
  Redis is the bench's own). Both are counted around a few sequential requests, so
  nothing else is in flight.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import resource
import signal
import subprocess
import time
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import psutil
from dashboard_seed import STATS_DATABASE
from dashboard_servers import Server, tree_cpu_seconds, tree_rss_bytes
from redis.asyncio import Redis

WRK_SCRIPT = Path(__file__).resolve().parent / "wrk" / "post.lua"
TX_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "START TRANSACTION", "SAVEPOINT", "RELEASE", "END")
# Sent by redis-py when it opens a pooled connection (HELLO, CLIENT SETINFO) or checks an
# idle one (PING): upkeep of the pool, not work the query asks for; counted apart.
REDIS_UPKEEP = frozenset({"hello", "client|setinfo", "client", "ping", "auth", "select"})


# --------------------------------------------------------------------------------------------
# wrk


@dataclass
class WrkResult:
    requests: int
    duration_s: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    socket_errors: dict[str, int]
    non_2xx: int
    graphql_errors: int
    generator_cpu_s: float  # wrk's own CPU: it shares the machine with what it measures

    @property
    def problems(self) -> list[str]:
        found = [f"{n} socket {kind} errors" for kind, n in self.socket_errors.items() if n]
        if self.non_2xx:
            found.append(f"{self.non_2xx} non-2xx answers")
        if self.graphql_errors:
            found.append(f"{self.graphql_errors} answers with GraphQL errors")
        if self.requests == 0:
            found.append("no request completed")
        return found


def add_load_arguments(parser: argparse.ArgumentParser) -> None:
    """The wrk load every bench of a server takes: round length, rounds, connections, threads."""
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per wrk round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per setup, interleaved")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (-c)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (-t)")


def wrk_version() -> str:
    done = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    text = (done.stdout + done.stderr).strip().splitlines()
    return text[0].split(" Copyright")[0] if text else "unknown"


def _wrk_process(argv: list[str], stopping_threads: int, timeout: float) -> tuple[int, str]:
    """Run wrk; with ``stopping_threads``, interrupt it once that many threads said they are
    done (wrk would otherwise sleep out its whole ``-d``). SIGINT ends its sleep early and it
    still prints its summary, then exits 0."""
    if not stopping_threads:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        return done.returncode, done.stdout + done.stderr
    lines: list[str] = []
    with subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as process:
        assert process.stdout is not None
        finished = 0
        for line in process.stdout:
            lines.append(line)
            if line.startswith("BENCH_THREAD_DONE"):
                finished += 1
                if finished == stopping_threads:
                    process.send_signal(signal.SIGINT)
        returncode = process.wait(timeout)
    return returncode, "".join(lines)


def run_wrk(
    url: str,
    body_file: Path,
    token: str,
    *,
    duration: float,
    connections: int,
    threads: int = 2,
    stop_after: int = 0,
) -> WrkResult:
    """One wrk run; ``stop_after`` > 0 stops once that many answers came back (about: each
    thread stops at its share, so up to ``connections`` more may have been sent)."""
    per_thread = math.ceil(stop_after / threads) if stop_after else 0
    argv = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(WRK_SCRIPT),
        url,
        "--",
        str(body_file),
        token or "-",
        str(per_thread),
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    returncode, stdout = _wrk_process(argv, threads if stop_after else 0, duration + 60)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next((x for x in stdout.splitlines() if x.startswith("BENCH_JSON ")), None)
    if returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({returncode}): {stdout[-1500:]}")
    data = json.loads(line.removeprefix("BENCH_JSON "))
    duration_s = data["duration_us"] / 1e6
    return WrkResult(
        requests=int(data["requests"]),
        duration_s=duration_s,
        rps=data["requests"] / duration_s if duration_s else 0.0,
        p50_ms=data["p50_us"] / 1000,
        p90_ms=data["p90_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        max_ms=data["max_us"] / 1000,
        socket_errors={k: int(data[k]) for k in ("connect", "read", "write", "timeout")},
        non_2xx=int(data["status"]),
        graphql_errors=int(data["graphql_errors"]),
        generator_cpu_s=(after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
    )


# --------------------------------------------------------------------------------------------
# One round under load


@dataclass
class RoundResult:
    setup: str
    round: int
    wrk: WrkResult
    app_cpu_ms: float  # per request
    pg_cpu_ms: float  # per request
    redis_cpu_ms: float  # per request
    rss_before: int
    rss_after: int
    # Cores' worth of CPU used during the round by everything else on the machine (busy time
    # minus the server, PostgreSQL, Redis and wrk): other people's work, i.e. the noise.
    other_cpu_cores: float
    load_average: float

    @property
    def ok(self) -> bool:
        return not self.wrk.problems


def _busy_seconds() -> float:
    """CPU seconds the whole machine has been busy, all cores together: user (guest time is
    already in it), system and interrupts; not idle, I/O wait or time stolen by the host."""
    t = psutil.cpu_times()
    return float(t.user + t.nice + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0))


def measure_round(
    server: Server,
    setup: str,
    number: int,
    *,
    postmaster_pid: int,
    redis_pid: int,
    body_file: Path,
    token: str,
    duration: float,
    connections: int,
    threads: int,
) -> RoundResult:
    rss_before = server.rss_bytes()
    cpu_app, cpu_pg, cpu_redis = (
        server.cpu_seconds(),
        tree_cpu_seconds(postmaster_pid),
        tree_cpu_seconds(redis_pid),
    )
    busy = _busy_seconds()
    result = run_wrk(
        server.url, body_file, token, duration=duration, connections=connections, threads=threads
    )
    busy = _busy_seconds() - busy
    app = server.cpu_seconds() - cpu_app
    pg = tree_cpu_seconds(postmaster_pid) - cpu_pg
    redis = tree_cpu_seconds(redis_pid) - cpu_redis
    per = 1000 / result.requests if result.requests else math.nan
    ours = app + pg + redis + result.generator_cpu_s
    return RoundResult(
        setup=setup,
        round=number,
        wrk=result,
        app_cpu_ms=app * per,
        pg_cpu_ms=pg * per,
        redis_cpu_ms=redis * per,
        rss_before=rss_before,
        rss_after=server.rss_bytes(),
        other_cpu_cores=max(0.0, busy - ours) / result.duration_s if result.duration_s else 0.0,
        load_average=os.getloadavg()[0],
    )


# --------------------------------------------------------------------------------------------
# Single requests


def post(url: str, body: bytes, token: str, timeout: float = 30.0) -> dict[str, Any]:
    """One request, its JSON answer (raises on a non-200 status)."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        answer: dict[str, Any] = json.loads(response.read())
        return answer


# --------------------------------------------------------------------------------------------
# Store calls


@dataclass
class StoreCalls:
    """Calls per request to each store, averaged over ``requests`` identical requests."""

    requests: int
    postgres: float  # statements in the relational database, transaction control apart
    postgres_tx: float  # its BEGIN / COMMIT / ROLLBACK: round trips too
    pgvector: float  # statements in the vector index's database (same server)
    pgvector_tx: float
    redis: float  # commands, every command of a pipeline counted
    redis_by_command: dict[str, float] = field(default_factory=dict)
    redis_upkeep: dict[str, float] = field(default_factory=dict)  # REDIS_UPKEEP, apart
    statements: list[dict[str, Any]] = field(default_factory=list)  # what ran, per request

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class StoreCounter:
    """Exact per-store call counts from the stores themselves.

    ``databases`` maps each database to the store it stands for: the relational core and
    the vector index are separate databases on one server, so pg_stat_statements (which
    records the database of every statement) attributes each statement without guessing
    from its text.
    """

    def __init__(self, socket_dir: str, databases: dict[str, str], redis_url: str) -> None:
        self.socket_dir = socket_dir
        self.databases = databases
        self.redis_url = redis_url
        self.conn: asyncpg.Connection | None = None
        self.redis: Redis | None = None

    async def open(self) -> None:
        self.conn = await asyncpg.connect(
            host=self.socket_dir, user="postgres", database=STATS_DATABASE
        )
        self.redis = Redis.from_url(self.redis_url)

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.close()
        if self.redis is not None:
            await self.redis.aclose()

    async def redis_pid(self) -> int:
        assert self.redis is not None
        return int((await self.redis.info("server"))["process_id"])

    async def snapshot(self) -> tuple[dict[tuple[Any, ...], tuple[int, str]], Counter[str]]:
        assert self.conn is not None and self.redis is not None
        rows = await self.conn.fetch(
            """
            SELECT d.datname, s.userid, s.queryid, s.toplevel, s.calls, s.query
            FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
            WHERE d.datname = ANY($1::text[])
            """,
            list(self.databases),
        )
        statements = {
            (r["datname"], r["userid"], r["queryid"], r["toplevel"]): (
                int(r["calls"]),
                str(r["query"]),
            )
            for r in rows
        }
        commands: Counter[str] = Counter()
        for name, stats in (await self.redis.info("commandstats")).items():
            commands[name.removeprefix("cmdstat_")] = int(stats["calls"])
        return statements, commands

    @contextlib.asynccontextmanager
    async def commands_sent(self, sent: Counter[str]) -> AsyncIterator[None]:
        """Count the commands clients send while the block runs, by name, from MONITOR.
        ``INFO commandstats`` would also count what a script runs inside Redis (each HMGET
        of an EVALSHA): one command sent, however many keys it reads, is one round of work
        for the client and one command for Redis to parse."""
        assert self.redis is not None
        ready = asyncio.Event()

        async def listen() -> None:
            async with self.redis.monitor() as monitor:  # type: ignore[union-attr]
                ready.set()
                while True:
                    info = await monitor.next_command()
                    name = info["command"].split(" ", 1)[0].lower()
                    if info["client_type"] != "lua" and name not in {"info", "monitor"}:
                        sent[name] += 1

        task = asyncio.create_task(listen())
        await asyncio.wait_for(ready.wait(), 5)
        await asyncio.sleep(0.1)  # MONITOR is on once its first reply is read
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def count(self, url: str, body: bytes, token: str, requests: int) -> StoreCalls:
        """Store calls of ``requests`` sequential requests, after two that are not counted
        (they refresh pooled connections). Redis connection upkeep that still happens is
        kept apart from the commands the query caused."""
        for _ in range(2):
            await asyncio.to_thread(post, url, body, token)
        await asyncio.sleep(0.3)
        before_pg, _before = await self.snapshot()
        sent: Counter[str] = Counter()
        async with self.commands_sent(sent):
            for _ in range(requests):
                await asyncio.to_thread(post, url, body, token)
            # A pooled connection's ROLLBACK may follow the answer: let it land first.
            await asyncio.sleep(0.3)
        after_pg, _after = await self.snapshot()
        totals: Counter[str] = Counter()
        ran = []
        for key, (calls, query) in after_pg.items():
            delta = calls - before_pg.get(key, (0, ""))[0]
            if delta <= 0:
                continue
            store = self.databases[key[0]]
            tx = query.lstrip().upper().startswith(TX_CONTROL)
            totals[f"{store}_tx" if tx else store] += delta
            ran.append(
                {
                    "store": store,
                    "calls": delta / requests,
                    "query": " ".join(query.split())[:300],
                }
            )
        redis_all = {name: calls / requests for name, calls in sent.items()}
        redis_delta = {n: c for n, c in redis_all.items() if n not in REDIS_UPKEEP}
        return StoreCalls(
            requests=requests,
            postgres=totals["postgres"] / requests,
            postgres_tx=totals["postgres_tx"] / requests,
            pgvector=totals["pgvector"] / requests,
            pgvector_tx=totals["pgvector_tx"] / requests,
            redis=sum(redis_delta.values()),
            redis_by_command=redis_delta,
            redis_upkeep={n: c for n, c in redis_all.items() if n in REDIS_UPKEEP},
            statements=sorted(ran, key=lambda s: (str(s["store"]), -float(s["calls"]))),
        )


# --------------------------------------------------------------------------------------------
# RSS over a long run


@dataclass
class RssDrift:
    rss_after: dict[int, int]  # wrk-counted requests so far -> RSS in bytes
    rss_start: int
    problems: list[str]
    seconds: float

    @property
    def ratio(self) -> float:
        counts = sorted(self.rss_after)
        if len(counts) < 2:
            return math.nan
        return self.rss_after[counts[-1]] / self.rss_after[counts[0]]


def rss_drift(
    server: Server,
    body_file: Path,
    token: str,
    *,
    checkpoints: tuple[int, int],
    connections: int,
    time_limit: float,
) -> RssDrift:
    """RSS of a fresh server after ``checkpoints[0]`` and ``checkpoints[1]`` requests.

    wrk stops itself when enough answers came back (``stop_after``); its time limit only
    bounds a server too slow to get there (the report then names the count it reached).
    """
    started = time.monotonic()
    rss: dict[int, int] = {}
    problems: list[str] = []
    rss_start = server.rss_bytes()
    done = 0
    for target in checkpoints:
        remaining = time_limit - (time.monotonic() - started)
        if remaining < 2:
            problems.append(f"time limit reached after {done} requests")
            break
        result = run_wrk(
            server.url,
            body_file,
            token,
            duration=remaining,
            connections=connections,
            stop_after=target - done,
        )
        done += result.requests
        problems.extend(result.problems)
        with contextlib.suppress(psutil.NoSuchProcess):
            rss[done] = tree_rss_bytes(server.pid)
        if done < target:
            problems.append(f"reached {done} of {target} requests within the time limit")
            break
    return RssDrift(
        rss_after=rss, rss_start=rss_start, problems=problems, seconds=time.monotonic() - started
    )
