"""Live subscriptions under load: commit-to-delivery latency, events lost or delivered twice.

It also kills and restarts the app mid-run and measures what that costs subscribers that
resume with ``after``.

Run: ``.venv/bin/python bench/subscriptions.py --snapshot`` (``--help`` for the counts). The
defaults: 1,000 subscribers over 20 tenants, 50 updates/s for 60 s, a SIGKILL at 30 s; two
to four minutes, more when the app falls behind (it then waits up to ``--drain`` seconds for
the last deliveries). ``--snapshot`` runs a copy of the app's code taken at the start, so
that edits to the checkout during a run cannot mix two versions (the report says which code
ran). Only 127.0.0.1 is used.

What one run does (see docs/benchmarks.md, "Live subscriptions"):

1. Creates its own database on the PostgreSQL server (``--database-url``), uses one Redis
   database (``--redis-url``, db 14 by default, flushed before and after) and starts an
   embedded PostgreSQL with pgvector in a temporary directory for the vector index, which the
   app needs at start-up (the machine's server may lack pgvector). Everything is dropped or
   stopped at the end, also on failure.
2. Starts ``chimera serve`` (uvicorn) as a subprocess on 127.0.0.1, creates the tenants with
   the same functions ``chimera tenant create`` and ``chimera token`` call, and the campaigns
   over HTTP.
3. Opens the subscribers, each its own WebSocket speaking graphql-transport-ws (the
   ``websockets`` library directly, no GraphQL client on top), with one tenant-wide
   ``campaignEvents`` subscription each, and waits until every one has received an event.
4. Commits ``updateCampaign`` mutations over HTTP at a fixed rate (an open loop: one every
   1/rate seconds whatever the answers take), round-robin over the tenants and their campaigns.
   Every subscriber of a tenant should receive every event of that tenant.
5. Halfway, SIGKILLs the app and starts it again on the same port. Clients reconnect with
   backoff and resubscribe with ``after`` = the last event id each saw. Mutations sent while
   the app is down fail and are not retried: what counts as committed is what PostgreSQL's
   outbox holds at the end, so a mutation whose answer was lost in the kill is still
   accounted for whether or not it committed.
6. Waits until the outbox is all published and every subscriber has reached the end of its
   tenant's stream (at most ``--drain`` seconds), then compares every subscriber's deliveries
   with the truth: the outbox rows in PostgreSQL and the entries of each tenant's Redis
   Stream. A subscriber expects every event of its tenant from its first delivery on; an
   event it never received is lost, one it received twice is a duplicate.
7. Closes every socket and reports what the app still holds (sockets, XREADs, memory).

Latency is measured per delivery from the event's ``occurredAt`` (the committing
transaction's ``now()``, its start, so it includes the transaction itself) and, for events
matched to a mutation's answer by campaign and ``updatedAt``, from the arrival of that answer
(after the commit, so a lower bound). Client, server and machine CPU are read from /proc.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import gc
import json
import math
import os
import platform
import random
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

# Run as a script, Python puts bench/ first on sys.path; the checkout's own app package must
# win over any installed copy, or this would measure some other tree's code.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg
import httpx
from redis.asyncio import Redis
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.typing import Subprotocol

from app.auth import Role, mint_token
from app.commands.tenants import create_tenant, set_tenant_limits
from app.events.relay import CAMPAIGN_EVENT_TYPES
from app.stores.postgres.embedded import ensure_database, start_embedded_postgres
from app.stores.postgres.engine import create_engine
from app.stores.redis import keys
from bench.unthrottled import UNLIMITED

ROOT = Path(__file__).resolve().parent.parent
SUBSCRIPTION = """
subscription($campaignId: ID, $after: String) {
  campaignEvents(campaignId: $campaignId, after: $after) {
    id type occurredAt campaign { id name status }
  }
}
"""
CREATE = """
mutation($input: CreateCampaignInput!) { createCampaign(input: $input) { campaign { id } } }
"""
UPDATE = """
mutation($input: UpdateCampaignInput!) {
  updateCampaign(input: $input) { campaign { id name updatedAt } }
}
"""
PROTOCOL = Subprotocol("graphql-transport-ws")
VECTOR_DATABASE = "chimera_bench_vectors"
# Hard bounds, whatever the command line says: this runs on shared machines.
MAX_SUBSCRIBERS = 5000
MAX_RATE = 500.0
MAX_DURATION = 600.0
MAX_IN_FLIGHT = 200  # mutations awaiting an answer; more are skipped and counted
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# Small helpers: ids, percentiles, /proc


def parse_id(stream_id: str) -> tuple[int, int]:
    ms, seq = stream_id.split("-")
    return int(ms), int(seq)


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def micros(iso: str) -> int:
    """A DateTime as an exact integer key (microseconds), to match occurredAt to updatedAt."""
    moment = datetime.fromisoformat(iso)
    return round(moment.timestamp()) * 1_000_000 + moment.microsecond


def percentile(ordered: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of an already sorted sequence (nan when empty)."""
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def summary_ms(seconds: Sequence[float]) -> dict[str, float | int]:
    ordered = sorted(s * 1000 for s in seconds)
    return {
        "n": len(ordered),
        "p50": percentile(ordered, 50),
        "p95": percentile(ordered, 95),
        "p99": percentile(ordered, 99),
        "max": ordered[-1] if ordered else math.nan,
    }


def process_cpu(pid: int) -> float | None:
    """User + system CPU seconds of one process, or None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def process_memory(pid: int, app_port: int) -> dict[str, int] | None:
    """RSS, open fds and the TCP connections among them by peer: clients of the app, Redis,
    PostgreSQL (by port), anything else."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        inodes = []
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.append(target[8:-1])
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        peers: dict[str, tuple[int, int]] = {}
        for table in ("tcp", "tcp6"):
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
                    cols = line.split()
                    local, remote, inode = cols[1], cols[2], cols[9]
                    peers[inode] = (
                        int(local.rsplit(":", 1)[1], 16),
                        int(remote.rsplit(":", 1)[1], 16),
                    )
    except (FileNotFoundError, ProcessLookupError):
        return None
    rss = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS"))
    found = {"rss_kb": rss, "fds": fds, "clients": 0, "redis": 0, "postgres": 0, "other": 0}
    for inode in inodes:
        if inode not in peers:
            continue  # a Unix socket (the embedded PostgreSQL) or not TCP
        own_port, peer_port = peers[inode]
        if peer_port == 0:
            continue  # the listening socket
        key = (
            "clients"
            if own_port == app_port
            else "redis"
            if peer_port == 6379
            else "postgres"
            if peer_port == 5432
            else "other"
        )
        found[key] += 1
    return found


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def stores_cpu() -> dict[int, float]:
    """CPU seconds of every postgres and redis-server process on the machine, by pid (not
    only ours: the servers are shared, so this bounds what the run cost them from above)."""
    found: dict[int, float] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            comm = Path(entry.path, "comm").read_text().strip()
        except OSError:
            continue
        if comm in ("postgres", "redis-server"):
            cpu = process_cpu(int(entry.name))
            if cpu is not None:
                found[int(entry.name)] = cpu
    return found


def stores_cpu_since(before: dict[int, float]) -> float:
    """CPU used since ``before`` by the processes alive now (those that exited are missed)."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in stores_cpu().items())


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies over all CPUs, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return float(sum(values) - idle), float(sum(values))


@dataclass
class CpuWindow:
    """CPU use of the client, the app process(es), the stores and the machine over a window."""

    wall: float = 0.0
    client: float = 0.0
    server: float = 0.0
    stores: float = 0.0
    machine_busy: float = 0.0
    machine_total: float = 0.0
    _start: dict[str, float] = field(default_factory=dict)
    _stores: dict[int, float] = field(default_factory=dict)

    def begin(self, server_pid: int) -> None:
        busy, total = machine_busy()
        self._start = {
            "wall": time.monotonic(),
            "client": own_cpu(),
            "server": process_cpu(server_pid) or 0.0,
            "busy": busy,
            "total": total,
        }
        self._stores = stores_cpu()

    def bank_server(self, server_pid: int) -> None:
        """Just before the app is killed: keep what it used; its successor starts at zero."""
        self.server += (process_cpu(server_pid) or 0.0) - self._start["server"]
        self._start["server"] = 0.0

    def end(self, server_pid: int) -> None:
        busy, total = machine_busy()
        self.wall = time.monotonic() - self._start["wall"]
        self.client = own_cpu() - self._start["client"]
        self.server += (process_cpu(server_pid) or 0.0) - self._start["server"]
        self.stores = stores_cpu_since(self._stores)
        self.machine_busy = busy - self._start["busy"]
        self.machine_total = total - self._start["total"]

    def as_dict(self) -> dict[str, float]:
        cores = os.cpu_count() or 1
        wall = self.wall or math.nan
        return {
            "wall_s": self.wall,
            "client_core_pct": 100 * self.client / wall,
            "server_core_pct": 100 * self.server / wall,
            "postgres_redis_core_pct": 100 * self.stores / wall,
            "machine_busy_pct": 100 * self.machine_busy / (self.machine_total or math.nan),
            "machine_cores": cores,
        }


# --------------------------------------------------------------------------------------------
# The app process and its stores


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL it if this bench dies, so no app outlives a run."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


@dataclass
class App:
    env: dict[str, str]
    port: int
    log_path: Path
    root: Path  # the tree the app runs from (its cwd, first on its sys.path)
    process: subprocess.Popen[bytes] | None = None
    starts: list[float] = field(default_factory=list)  # seconds from spawn to /healthz 200

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        spawned = time.monotonic()
        # Popen, not asyncio's subprocess: the death signal is tied to the thread that forks,
        # and this is the main thread, which lives as long as the run.
        with self.log_path.open("ab") as out:
            self.process = subprocess.Popen(  # noqa: ASYNC220 (see above)
                [sys.executable, "-m", "app.cli", "serve", "--no-seed", "--port", str(self.port)],
                env=self.env,
                cwd=self.root,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent,
            )
        async with httpx.AsyncClient(timeout=10) as client:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"the app exited with {self.process.returncode}; see log")
                if time.monotonic() - spawned > 180:
                    raise RuntimeError("the app did not become healthy within 180 s")
                try:
                    if (await client.get(f"{self.base}/healthz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.05)
        self.starts.append(time.monotonic() - spawned)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    def log_problems(self) -> tuple[int, list[str]]:
        """Server log lines at WARNING or above (uvicorn's access log is INFO)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return 0, []
        bad = [
            line
            for line in text.splitlines()
            if line.startswith(("WARNING", "ERROR", "CRITICAL", "Traceback"))
        ]
        return len(bad), bad[:20]


async def admin_execute(server_url: str, statement: str) -> None:
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def database_url(server_url: str, name: str) -> str:
    base, _, _ = server_url.rpartition("/")
    return f"{base}/{name}"


# --------------------------------------------------------------------------------------------
# Clients: tenants, subscribers, mutations


@dataclass
class Tenant:
    slug: str
    id: uuid.UUID
    viewer: str
    editor: str
    campaigns: list[str] = field(default_factory=list)


@dataclass(eq=False)
class Subscriber:
    index: int
    tenant: Tenant
    # (stream id, receipt time, occurredAt, campaign id, campaign name, generation)
    deliveries: list[tuple[str, float, str, str | None, str | None, int]] = field(
        default_factory=list
    )
    first_id: str | None = None
    last_id: str | None = None
    generation: int = 0  # bumped on every (re)subscription
    subscribed_at: list[float] = field(default_factory=list)  # per generation
    op: str = ""
    retries: int = 0  # resubscriptions after the server ended the subscription
    errors: Counter[str] = field(default_factory=Counter)

    def subscribe_message(self) -> str:
        self.op = f"{self.index}.{self.generation}"
        variables: dict[str, Any] = {}
        if self.last_id is not None:
            variables["after"] = self.last_id
        return json.dumps(
            {
                "id": self.op,
                "type": "subscribe",
                "payload": {"query": SUBSCRIPTION, "variables": variables},
            }
        )

    def record(self, event: dict[str, Any], received: float) -> None:
        stream_id = event["id"]
        campaign = event.get("campaign") or {}
        self.deliveries.append(
            (
                stream_id,
                received,
                event["occurredAt"],
                campaign.get("id"),
                campaign.get("name"),
                self.generation,
            )
        )
        if self.first_id is None:
            self.first_id = stream_id
        if self.last_id is None or parse_id(stream_id) > parse_id(self.last_id):
            self.last_id = stream_id


@dataclass(eq=False)
class Connection:
    """One WebSocket; holds one subscription or more (``--per-socket``)."""

    index: int
    tenant: Tenant
    subscribers: list[Subscriber]
    acks: list[float] = field(default_factory=list)  # time.time() of each connection_ack
    attempts: int = 0
    closes: Counter[str] = field(default_factory=Counter)
    ready: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class Mutation:
    seq: int
    tenant: int
    campaign: str
    sent: float
    answered: float | None = None
    updated_at: str | None = None
    outcome: str = "pending"  # ok | down (never reached the app) | lost (answer lost) | <code>


@dataclass
class Run:
    url: str
    connections: list[Connection]
    stopping: bool = False
    kill_time: float | None = None
    loop_lag: list[float] = field(default_factory=list)
    protocol_errors: Counter[str] = field(default_factory=Counter)


async def handle_messages(ws: ClientConnection, conn: Connection, run: Run) -> None:
    by_op = {sub.op: sub for sub in conn.subscribers}
    retrying: set[asyncio.Task[None]] = set()

    async def resubscribe(sub: Subscriber) -> None:
        # Backoff, so that an overloaded app is not answered with a storm of retries.
        sub.retries += 1
        await asyncio.sleep(min(0.5 * 2 ** (sub.retries - 1), 5.0) * (0.5 + random.random()))
        sub.generation += 1
        sub.subscribed_at.append(time.time())
        by_op[f"{sub.index}.{sub.generation}"] = sub
        with contextlib.suppress(ConnectionClosed):  # the reconnect resubscribes it then
            await ws.send(sub.subscribe_message())

    try:
        async for raw in ws:
            received = time.time()
            message = json.loads(raw)
            kind = message.get("type")
            if kind == "next":
                sub = by_op.get(message.get("id", ""))
                if sub is None:
                    run.protocol_errors["next for an unknown or finished operation"] += 1
                    continue
                payload = message.get("payload") or {}
                for error in payload.get("errors") or []:
                    code = (error.get("extensions") or {}).get("code", "no code")
                    sub.errors[f"next with error {code}: {error.get('message', '')[:80]}"] += 1
                data = payload.get("data") or {}
                if data.get("campaignEvents"):
                    sub.record(data["campaignEvents"], received)
            elif kind == "ping":
                await ws.send('{"type":"pong"}')
            elif kind in ("error", "complete"):
                # The server ended a subscription: a real client resumes it with 'after' on
                # the same socket. Each one is counted; it is a finding on its own.
                sub = by_op.pop(message.get("id", ""), None)
                if sub is None:
                    continue
                detail = json.dumps(message.get("payload"))[:160] if kind == "error" else ""
                sub.errors[f"{kind} from server {detail}".strip()] += 1
                if not run.stopping:
                    task = asyncio.create_task(resubscribe(sub))
                    retrying.add(task)
                    task.add_done_callback(retrying.discard)
            elif kind != "pong":
                run.protocol_errors[f"unexpected message type {kind!r}"] += 1
    finally:
        for task in retrying:
            task.cancel()


async def hold_connection(conn: Connection, run: Run, compression: bool) -> None:
    """Connect, subscribe, receive; on any drop reconnect and resume with ``after``."""
    backoff = 0.1
    first = True
    while not run.stopping:
        conn.attempts += 1
        try:
            async with connect(
                run.url,
                subprotocols=[PROTOCOL],
                compression="deflate" if compression else None,
                open_timeout=15,
                close_timeout=2,
                max_size=2**20,
            ) as ws:
                token = conn.tenant.viewer
                await ws.send(
                    json.dumps(
                        {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}
                    )
                )
                async with asyncio.timeout(15):
                    ack = json.loads(await ws.recv())
                if ack.get("type") != "connection_ack":
                    raise RuntimeError(f"expected connection_ack, got {ack}")
                now = time.time()
                conn.acks.append(now)
                for sub in conn.subscribers:
                    if not first:
                        sub.generation += 1
                    sub.subscribed_at.append(now)
                    await ws.send(sub.subscribe_message())
                first = False
                backoff = 0.1
                conn.ready.set()
                await handle_messages(ws, conn, run)
                if not run.stopping:
                    conn.closes[f"closed by server ({ws.close_code})"] += 1
        except ConnectionClosed as exc:
            if run.stopping:
                return
            code = exc.rcvd.code if exc.rcvd is not None else "no close frame"
            conn.closes[f"connection closed ({code})"] += 1
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            if run.stopping:
                return
            conn.closes[type(exc).__name__] += 1
        # Jittered, capped backoff: 1,000 clients must not reconnect in lockstep.
        await asyncio.sleep(backoff * (0.5 + random.random()))
        backoff = min(backoff * 2, 0.5)


async def report_progress(run: Run, app: App, every: float = 5.0) -> None:
    """A line every few seconds while the load runs: what the clients hold and receive."""
    last_cpu, last_deliveries, last_time = own_cpu(), 0, time.monotonic()
    while not run.stopping:
        await asyncio.sleep(every)
        subs = [sub for conn in run.connections for sub in conn.subscribers]
        deliveries = sum(len(sub.deliveries) for sub in subs)
        now, cpu = time.monotonic(), own_cpu()
        acked = sum(1 for conn in run.connections if conn.acks)
        since_kill = (
            sum(1 for conn in run.connections if conn.acks and conn.acks[-1] > run.kill_time)
            if run.kill_time
            else len(run.connections)
        )
        log(
            f"  {(deliveries - last_deliveries) / (now - last_time):,.0f} deliveries/s, "
            f"{since_kill}/{acked} sockets (re)connected, client CPU "
            f"{100 * (cpu - last_cpu) / (now - last_time):.0f}%, app pid {app.pid} CPU "
            f"{process_cpu(app.pid) or 0:.1f} s"
        )
        last_cpu, last_deliveries, last_time = cpu, deliveries, now


async def watch_loop_lag(run: Run, interval: float = 0.02) -> None:
    """How late this process's event loop wakes up: the client's own delay on every receipt."""
    while not run.stopping:
        before = time.perf_counter()
        await asyncio.sleep(interval)
        run.loop_lag.append(time.perf_counter() - before - interval)


async def mutate(
    client: httpx.AsyncClient, app: App, tenant: Tenant, m: Mutation, name: str
) -> None:
    try:
        reply = await client.post(
            f"{app.base}/graphql",
            json={"query": UPDATE, "variables": {"input": {"id": m.campaign, "name": name}}},
            headers={"Authorization": f"Bearer {tenant.editor}"},
        )
        m.answered = time.time()
        body = reply.json()
    except httpx.ConnectError:
        m.outcome = "down"  # refused: the request never reached an app, nothing committed
        return
    except (httpx.HTTPError, ValueError):
        m.outcome = "lost"  # sent, answer lost: committed or not, the outbox says which
        return
    if body.get("errors"):
        m.outcome = str((body["errors"][0].get("extensions") or {}).get("code", "error"))
        return
    m.updated_at = body["data"]["updateCampaign"]["campaign"]["updatedAt"]
    m.outcome = "ok"


async def warm_up(app: App, client: httpx.AsyncClient, run: Run, tenants: list[Tenant]) -> int:
    """Probe every tenant until each subscriber has received an event: from then on every
    subscription is certainly live, and each subscriber expects everything after its first."""
    subscribers = [sub for conn in run.connections for sub in conn.subscribers]
    for attempt in range(1, 9):
        waiting = {sub.tenant.slug for sub in subscribers if sub.first_id is None}
        if not waiting:
            return attempt - 1
        for tenant in tenants:
            if tenant.slug in waiting:
                probe = Mutation(-attempt, 0, tenant.campaigns[0], time.time())
                await mutate(client, app, tenant, probe, f"probe {attempt}")
        deadline = time.monotonic() + 3
        # Polling: the receivers fill first_id; nothing here to wait on but the clock.
        while time.monotonic() < deadline and any(s.first_id is None for s in subscribers):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    missing = sum(1 for sub in subscribers if sub.first_id is None)
    if missing:
        raise RuntimeError(f"{missing} subscribers received nothing after 8 probes")
    return 8


# --------------------------------------------------------------------------------------------
# The truth, and comparing deliveries with it


@dataclass
class Event:
    stream_id: str
    key: tuple[int, int]
    outbox_id: int
    tenant: uuid.UUID
    occurred: float  # epoch seconds, the transaction's now()
    added: float  # epoch seconds, the XADD (the stream id's milliseconds)


@dataclass
class Truth:
    events: dict[uuid.UUID, list[Event]]  # each tenant's stream, in order
    unpublished: dict[uuid.UUID, list[float]]  # committed, never in the stream: created_at
    facts: dict[str, Any]


async def read_truth(db_url: str, redis_url: str, tenants: list[Tenant]) -> Truth:
    conn = await asyncpg.connect(db_url)
    try:
        rows = await conn.fetch(
            "SELECT id, tenant_id, created_at, published_at FROM outbox "
            "WHERE aggregate_type = 'campaign' AND event_type = ANY($1::text[]) ORDER BY id",
            sorted(CAMPAIGN_EVENT_TYPES),
        )
    finally:
        await conn.close()
    outbox = {row["id"]: row for row in rows}
    redis = Redis.from_url(redis_url)
    by_tenant: dict[uuid.UUID, list[Event]] = {}
    in_stream: Counter[int] = Counter()
    try:
        for tenant in tenants:
            events: list[Event] = []
            start = "-"
            while True:
                chunk: list[tuple[bytes, dict[bytes, bytes]]] = await redis.xrange(  # type: ignore[assignment]
                    keys.event_stream(tenant.id), min=start, count=10_000
                )
                for raw_id, fields in chunk:
                    stream_id = raw_id.decode()
                    outbox_id = int(fields[b"event"])
                    in_stream[outbox_id] += 1
                    key = parse_id(stream_id)
                    events.append(
                        Event(
                            stream_id,
                            key,
                            outbox_id,
                            tenant.id,
                            epoch(fields[b"at"].decode()),
                            key[0] / 1000,
                        )
                    )
                if len(chunk) < 10_000:
                    break
                start = f"({chunk[-1][0].decode()}"
            by_tenant[tenant.id] = events
    finally:
        await redis.aclose()
    unpublished = [row for row in rows if row["id"] not in in_stream]
    lost_by_tenant: dict[uuid.UUID, list[float]] = defaultdict(list)
    for row in unpublished:
        lost_by_tenant[row["tenant_id"]].append(row["created_at"].timestamp())
    facts = {
        "outbox_campaign_events": len(rows),
        "outbox_rows_never_published": len(unpublished),
        "outbox_rows_marked_published_but_not_in_stream": sum(
            1 for row in unpublished if row["published_at"] is not None
        ),
        "stream_entries_for_the_same_outbox_row_twice": sum(
            count - 1 for count in in_stream.values() if count > 1
        ),
        "stream_entries_with_no_outbox_row": sum(1 for i in in_stream if i not in outbox),
    }
    return Truth(by_tenant, lost_by_tenant, facts)


def analyse(run: Run, truth: Truth, mutations: list[Mutation], load_start: float) -> dict[str, Any]:
    """Every subscriber's deliveries against the stream and the outbox.

    A subscriber expects every event of its tenant from its first delivery on. Events are
    split by when they committed: before the kill or after it (the whole run without one).
    A delivery is "live" when its subscription was already open at the event's commit, and
    "resumed" when it came through a resubscription with ``after`` (the replay).
    """
    kill = run.kill_time
    phases = ("before kill", "after kill") if kill is not None else ("whole run",)

    def phase(moment: float) -> str:
        if kill is None:
            return "whole run"
        return "before kill" if moment < kill else "after kill"

    subscribers = [sub for conn in run.connections for sub in conn.subscribers]
    # Stream ids are unique within one tenant's stream only: two streams written in the same
    # millisecond both get "<ms>-0".
    by_id = {(e.tenant, e.stream_id): e for events in truth.events.values() for e in events}
    answered = {
        (m.campaign, micros(m.updated_at)): m
        for m in mutations
        if m.outcome == "ok" and m.updated_at is not None
    }
    expected: Counter[str] = Counter()
    lost: Counter[str] = Counter()
    duplicates: Counter[str] = Counter()
    resumed: Counter[str] = Counter()
    out_of_order = foreign = later_names = 0
    latency: dict[str, dict[str, list[float]]] = {
        p: defaultdict(list) for p in (*phases, "resumed")
    }
    lost_examples: list[str] = []
    foreign_examples: list[str] = []
    subscribers_losing: set[int] = set()

    for sub in subscribers:
        assert sub.first_id is not None
        first = parse_id(sub.first_id)
        seen: Counter[str] = Counter()
        highest: tuple[int, int] = (0, 0)
        own_campaigns = set(sub.tenant.campaigns)
        for stream_id, received, occurred_iso, campaign, name, gen in sub.deliveries:
            seen[stream_id] += 1
            key = parse_id(stream_id)
            if key <= highest and seen[stream_id] == 1:
                out_of_order += 1
            highest = max(highest, key)
            event = by_id.get((sub.tenant.id, stream_id))
            if event is None or (campaign is not None and campaign not in own_campaigns):
                # Not in the subscriber's tenant's stream: another tenant's event, or none.
                foreign += 1
                if len(foreign_examples) < 10:
                    foreign_examples.append(
                        f"subscriber {sub.index} of tenant {sub.tenant.id}: {stream_id} "
                        f"(campaign {campaign})"
                    )
                continue
            if seen[stream_id] > 1 or event.occurred < load_start:
                continue  # a duplicate (counted below), or a warm-up probe
            occurred = epoch(occurred_iso)
            if gen > 0 and occurred < sub.subscribed_at[gen]:
                resumed[phase(occurred)] += 1
                latency["resumed"]["occurred_to_receipt"].append(received - occurred)
                continue
            times = latency[phase(occurred)]
            times["occurred_to_receipt"].append(received - occurred)
            times["xadd_to_receipt"].append(received - event.added)
            matched = answered.get((campaign or "", micros(occurred_iso)))
            if matched is not None and matched.answered is not None:
                times["answer_to_receipt"].append(received - matched.answered)
                if name != f"m{matched.seq}":
                    later_names += 1  # resolved after a later update of the same campaign
        for event in truth.events[sub.tenant.id]:
            if event.key < first:
                continue
            p = phase(event.occurred)
            expected[p] += 1
            if seen[event.stream_id] == 0:
                lost[p] += 1
                subscribers_losing.add(sub.index)
                if len(lost_examples) < 10:
                    lost_examples.append(f"subscriber {sub.index}: {event.stream_id}")
            elif seen[event.stream_id] > 1:
                duplicates[p] += seen[event.stream_id] - 1
        # Committed but never published: lost to every subscriber of the tenant.
        first_event = by_id.get((sub.tenant.id, sub.first_id))
        first_at = first_event.occurred if first_event is not None else load_start
        for created in truth.unpublished.get(sub.tenant.id, []):
            if created >= first_at:
                expected[phase(created)] += 1
                lost[phase(created)] += 1
                subscribers_losing.add(sub.index)

    for events in truth.events.values():
        for e in events:
            if e.occurred >= load_start:
                latency[phase(e.occurred)]["occurred_to_xadd"].append(e.added - e.occurred)
    return {
        "expected_deliveries": {p: expected[p] for p in phases},
        "lost": {p: lost[p] for p in phases},
        "duplicates": {p: duplicates[p] for p in phases},
        "resumed_deliveries": {p: resumed[p] for p in phases},
        "subscribers_that_lost_something": len(subscribers_losing),
        "lost_examples": lost_examples,
        "out_of_order": out_of_order,
        "foreign_or_unknown_events": foreign,
        "foreign_examples": foreign_examples,
        "deliveries_naming_a_later_update": later_names,
        "latency_ms": {
            p: {what: summary_ms(values) for what, values in times.items()}
            for p, times in latency.items()
        },
    }


# --------------------------------------------------------------------------------------------
# The run


async def create_tenants(db_url: str, secret: str, count: int) -> list[Tenant]:
    engine = create_engine(db_url.replace("postgresql://", "postgresql+asyncpg://"), timeout=10)
    tenants = []
    try:
        for i in range(count):
            row = await create_tenant(engine, f"bench-{i:03d}", f"Bench tenant {i}")
            await set_tenant_limits(engine, row.slug, dict(UNLIMITED))

            def token(role: Role, row: Any = row) -> str:
                return mint_token(
                    secret,
                    tenant_id=row.id,
                    tenant_slug=row.slug,
                    role=role,
                    subject="bench",
                    ttl_seconds=3600,
                )

            tenants.append(Tenant(row.slug, row.id, token(Role.VIEWER), token(Role.EDITOR)))
    finally:
        await engine.dispose()
    return tenants


async def create_campaigns(client: httpx.AsyncClient, app: App, tenant: Tenant, n: int) -> None:
    for i in range(n):
        reply = await client.post(
            f"{app.base}/graphql",
            json={"query": CREATE, "variables": {"input": {"name": f"{tenant.slug} c{i}"}}},
            headers={"Authorization": f"Bearer {tenant.editor}"},
        )
        body = reply.json()
        if body.get("errors"):
            raise RuntimeError(f"createCampaign failed: {body['errors']}")
        tenant.campaigns.append(body["data"]["createCampaign"]["campaign"]["id"])


async def drain(
    run: Run, tenants: list[Tenant], db_url: str, redis_url: str, timeout: float
) -> float:
    """Seconds until every event is published and every subscriber has received up to its
    stream's end; -1 if that did not happen within ``timeout``."""
    started = time.monotonic()
    subscribers = [sub for conn in run.connections for sub in conn.subscribers]
    redis = Redis.from_url(redis_url)
    conn = await asyncpg.connect(db_url)
    try:
        while time.monotonic() - started < timeout:
            waiting = await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL")
            tails: dict[uuid.UUID, tuple[int, int]] = {}
            for tenant in tenants:
                last: list[tuple[bytes, Any]] = await redis.xrevrange(  # type: ignore[assignment]
                    keys.event_stream(tenant.id), count=1
                )
                tails[tenant.id] = parse_id(last[0][0].decode()) if last else (0, 0)
            if not waiting and all(
                sub.last_id is not None and parse_id(sub.last_id) >= tails[sub.tenant.id]
                for sub in subscribers
            ):
                return time.monotonic() - started
            await asyncio.sleep(0.5)
    finally:
        await conn.close()
        await redis.aclose()
    return -1.0


async def redis_xread_clients(redis_url: str) -> int:
    """Connections to the bench's Redis db blocked in XREAD now: one per live tenant reader."""
    redis = Redis.from_url(redis_url)
    try:
        clients = await redis.client_list()
    finally:
        await redis.aclose()
    tail = redis_url.rsplit("/", 1)[1]
    db = int(tail) if tail.isdigit() else 0
    return sum(
        1
        for c in clients
        if c.get("cmd") == "xread" and "b" in str(c.get("flags", "")) and int(c.get("db", -1)) == db
    )


async def measure(args: argparse.Namespace, app: App, db_url: str) -> dict[str, Any]:
    results: dict[str, Any] = {}
    secret = app.env["CHIMERA_AUTH_SECRET"]
    tenants = await create_tenants(db_url, secret, args.tenants)
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(timeout=10, limits=limits) as client:
        await asyncio.gather(*(create_campaigns(client, app, t, args.campaigns) for t in tenants))
        log(f"{len(tenants)} tenants x {args.campaigns} campaigns created")

        # Subscribers: spread evenly over the tenants; ``per_socket`` of them share a socket.
        connections: list[Connection] = []
        subscribers: list[Subscriber] = []
        per_tenant = args.subscribers // args.tenants
        for t_index, tenant in enumerate(tenants):
            mine = [Subscriber(t_index * per_tenant + i, tenant) for i in range(per_tenant)]
            subscribers += mine
            for start in range(0, len(mine), args.per_socket):
                connections.append(
                    Connection(len(connections), tenant, mine[start : start + args.per_socket])
                )
        run = Run(f"ws://127.0.0.1:{app.port}/graphql", connections)
        baseline = process_memory(app.pid, app.port)
        baseline_xread = await redis_xread_clients(args.redis_url)

        opened = time.monotonic()
        tasks: list[asyncio.Task[None]] = []
        gate = asyncio.Semaphore(50)  # handshakes in flight while ramping up

        async def open_one(conn: Connection) -> None:
            async with gate:
                tasks.append(asyncio.create_task(hold_connection(conn, run, args.compression)))
                await asyncio.wait_for(conn.ready.wait(), 60)

        lag_task = asyncio.create_task(watch_loop_lag(run))
        progress_task: asyncio.Task[None] | None = None
        try:
            await asyncio.gather(*(open_one(conn) for conn in connections))
            open_s = time.monotonic() - opened
            log(f"{len(subscribers)} subscriptions on {len(connections)} sockets in {open_s:.1f} s")
            probes = await warm_up(app, client, run, tenants)
            log(f"every subscriber live after {probes} probe round(s)")
            during_setup = process_memory(app.pid, app.port)
            xread_live = await redis_xread_clients(args.redis_url)

            # The load. The cyclic collector is off while it runs: the client keeps every
            # delivery (a few hundred thousand tuples), and full collections over them would
            # stall this loop and delay its receipt times. Memory is bounded by the counts.
            gc.collect()
            gc.freeze()
            gc.disable()
            run.loop_lag.clear()
            mutations: list[Mutation] = []
            pending: set[asyncio.Task[None]] = set()
            skipped = 0
            cpu_all, cpu_steady = CpuWindow(), CpuWindow()
            cpu_all.begin(app.pid)
            cpu_steady.begin(app.pid)
            load_start = time.time()
            started = time.monotonic()
            total = int(args.rate * args.duration)
            kill_task: asyncio.Task[None] | None = None
            restart: dict[str, Any] = {}

            async def kill_and_restart() -> None:
                await asyncio.sleep(args.kill_at)
                cpu_steady.end(app.pid)
                old = app.pid
                cpu_all.bank_server(old)
                run.kill_time = time.time()
                app.kill()
                log(f"killed the app (pid {old}) with SIGKILL; starting it again")
                await app.start()
                restart["app_restart_s"] = app.starts[-1]
                restart["healthy_at"] = time.time()
                log(f"app back (pid {app.pid}) in {app.starts[-1]:.1f} s")

            profiler = None
            if args.py_spy:
                # Sampled without pausing the app (--nonblocking), over the steady part of the
                # load: up to the kill, or the whole load without one.
                seconds = args.kill_at if args.kill_at is not None else args.duration
                profiler = subprocess.Popen(  # noqa: ASYNC220 (a sampler, waited for below)
                    [
                        args.py_spy,
                        "record",
                        "--pid",
                        str(app.pid),
                        "--rate",
                        "100",
                        "--nonblocking",
                        "--format",
                        "raw",
                        "--duration",
                        str(int(seconds)),
                        "--output",
                        str(args.profile_out),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    stdin=subprocess.DEVNULL,
                    preexec_fn=_die_with_parent,
                )
            if args.kill_at is not None:
                kill_task = asyncio.create_task(kill_and_restart())
            progress_task = asyncio.create_task(report_progress(run, app))
            for seq in range(total):
                delay = started + seq / args.rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                tenant_index = seq % len(tenants)
                tenant = tenants[tenant_index]
                campaign = tenant.campaigns[(seq // len(tenants)) % len(tenant.campaigns)]
                if len(pending) >= MAX_IN_FLIGHT:
                    skipped += 1
                    continue
                m = Mutation(seq, tenant_index, campaign, time.time())
                mutations.append(m)
                task = asyncio.create_task(mutate(client, app, tenant, m, f"m{seq}"))
                pending.add(task)
                task.add_done_callback(pending.discard)
            if kill_task is not None:
                await kill_task
            if profiler is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    await asyncio.to_thread(profiler.wait, 30)
                if profiler.poll() is None:
                    profiler.kill()
                log(f"py-spy profile of the app (collapsed stacks): {args.profile_out}")
            if pending:
                await asyncio.wait(pending, timeout=15)
            load_s = time.monotonic() - started
            if args.kill_at is None:
                cpu_steady.end(app.pid)
            cpu_all.end(app.pid)
            lag = sorted(run.loop_lag)
            log(f"{len(mutations)} mutations sent in {load_s:.1f} s; waiting for deliveries")

            # Stragglers: until the outbox is all published and every subscriber has reached
            # the end of its tenant's stream, or --drain runs out.
            drained = await drain(run, tenants, db_url, args.redis_url, args.drain)
            log(f"deliveries {'complete' if drained >= 0 else 'still missing'} after the load")
            after_load = process_memory(app.pid, app.port)
            xread_load = await redis_xread_clients(args.redis_url)
        finally:
            # Close every socket, then see whether the app let go of what they held.
            run.stopping = True
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for extra in (lag_task, progress_task):
                if extra is not None:
                    extra.cancel()
                    await asyncio.gather(extra, return_exceptions=True)
        gc.enable()
        gc.unfreeze()
        await client.aclose()  # its keep-alive connections are not the app's to release
        await asyncio.sleep(args.block_wait)
        after_close = process_memory(app.pid, app.port)
        xread_closed = await redis_xread_clients(args.redis_url)

    truth = await read_truth(db_url, args.redis_url, tenants)
    delivered = analyse(run, truth, mutations, load_start)

    outcomes = Counter(m.outcome for m in mutations)
    committed_in_load = sum(
        1 for events in truth.events.values() for e in events if e.occurred >= load_start
    )
    round_trips = [m.answered - m.sent for m in mutations if m.answered and m.outcome == "ok"]
    reconnects: list[float] = []
    first_events: list[float] = []
    if run.kill_time is not None:
        for conn in connections:
            later = [t for t in conn.acks if t > run.kill_time]
            if later:
                reconnects.append(later[0] - run.kill_time)
        for sub in subscribers:
            after = [d[1] for d in sub.deliveries if d[5] > 0 and d[1] > run.kill_time]
            if after:
                first_events.append(min(after) - run.kill_time)
        restart["connections_reconnected"] = len(reconnects)
        restart["connections"] = len(connections)
        restart["kill_to_connection_ack_ms"] = summary_ms(reconnects)
        healthy = restart.pop("healthy_at")
        restart["healthy_to_connection_ack_ms"] = summary_ms(
            [r - (healthy - run.kill_time) for r in reconnects]
        )
        restart["kill_to_first_event_after_resume_ms"] = summary_ms(first_events)
        restart["connection_attempts_total"] = sum(c.attempts for c in connections)
    closes: Counter[str] = Counter()
    sub_errors: Counter[str] = Counter()
    for conn in connections:
        closes.update(conn.closes)
        for sub in conn.subscribers:
            sub_errors.update(sub.errors)
    problems, sample = app.log_problems()

    results.update(
        {
            "setup": {
                "sockets": len(connections),
                "subscriptions": len(subscribers),
                "open_s": open_s,
                "probe_rounds": probes,
            },
            "mutations": {
                "scheduled": total,
                "sent": len(mutations),
                "skipped_over_in_flight_cap": skipped,
                "outcomes": dict(outcomes),
                "round_trip_ms": summary_ms(round_trips),
                "load_s": load_s,
                "drain_s": drained,
                "committed_events_in_load_window": committed_in_load,
            },
            "relay": truth.facts,
            "delivery": delivered,
            "restart": restart,
            "cpu_steady": cpu_steady.as_dict(),
            "cpu_whole_load": cpu_all.as_dict(),
            "client_loop_lag_ms": {
                "p50": percentile(lag, 50) * 1000,
                "p99": percentile(lag, 99) * 1000,
                "max": (lag[-1] if lag else math.nan) * 1000,
            },
            "app_resources": {
                "before_subscribers": baseline,
                "subscribed": during_setup,
                "after_load": after_load,
                f"{args.block_wait:.0f}s_after_all_sockets_closed": after_close,
                "redis_xread_connections": {
                    "before_subscribers": baseline_xread,
                    "subscribed": xread_live,
                    "after_load": xread_load,
                    "after_close": xread_closed,
                },
            },
            "client_errors": {
                "socket_closes": dict(closes),
                "subscription_errors": dict(sub_errors),
                "protocol": dict(run.protocol_errors),
            },
            "app_log_warnings": {"count": problems, "first": sample},
        }
    )
    return results


def fmt(value: float, unit: str = " ms") -> str:
    return "-" if value is None or math.isnan(value) else f"{value:,.1f}{unit}"


def print_report(config: dict[str, Any], r: dict[str, Any]) -> None:
    d, m, s = r["delivery"], r["mutations"], r["setup"]
    print()
    print(
        f"{s['subscriptions']:,} subscriptions on {s['sockets']:,} sockets over "
        f"{config['tenants']} tenants; {config['rate']:g} updates/s for {config['duration']:g} s"
        + (f", SIGKILL at {config['kill_at']:g} s" if config["kill_at"] is not None else "")
    )
    code = config["code"]
    print(
        f"code: HEAD {code['head'] or '?'}, {len(code['modified'])} files modified "
        f"(sha256 {code['sha256']}{', snapshot' if 'snapshot_sha256' in code else ''}); "
        f"load average {config['load_average_before'][0]:.1f} before, "
        f"{config['load_average_after'][0]:.1f} after"
    )
    print()
    print("| latency | events committed | n | p50 | p95 | p99 | max |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for label, what in (
        ("occurredAt to receipt (live)", "occurred_to_receipt"),
        ("mutation answer to receipt (live)", "answer_to_receipt"),
        ("occurredAt to XADD (per event)", "occurred_to_xadd"),
        ("XADD to receipt (live)", "xadd_to_receipt"),
    ):
        for p, times in d["latency_ms"].items():
            if p == "resumed" or what not in times:
                continue
            v = times[what]
            print(
                f"| {label} | {p} | {v['n']:,} | {fmt(v['p50'])} | {fmt(v['p95'])} "
                f"| {fmt(v['p99'])} | {fmt(v['max'])} |"
            )
    v = d["latency_ms"]["resumed"].get("occurred_to_receipt")
    if v:
        print(
            f"| occurredAt to receipt (by replay after resume) | either | {v['n']:,} "
            f"| {fmt(v['p50'])} | {fmt(v['p95'])} | {fmt(v['p99'])} | {fmt(v['max'])} |"
        )
    print()
    print("| events | expected deliveries | lost (never delivered) | delivered twice |")
    print("| --- | --- | --- | --- |")
    for b, n in d["expected_deliveries"].items():
        print(f"| committed {b} | {n:,} | {d['lost'][b]:,} | {d['duplicates'][b]:,} |")
    print()
    rows = [
        ("mutations sent / outcomes", f"{m['sent']:,} / {m['outcomes']}"),
        (
            "mutation round trip p50 / p99",
            f"{fmt(m['round_trip_ms']['p50'])} / {fmt(m['round_trip_ms']['p99'])}",
        ),
        ("events committed in the load window", f"{m['committed_events_in_load_window']:,}"),
        (
            "every delivery in, after the last mutation",
            fmt(m["drain_s"], " s") if m["drain_s"] >= 0 else "no: gave up (--drain)",
        ),
        ("out of order / foreign", f"{d['out_of_order']} / {d['foreign_or_unknown_events']}"),
        (
            "relay: never published / published twice",
            f"{r['relay']['outbox_rows_never_published']} / "
            f"{r['relay']['stream_entries_for_the_same_outbox_row_twice']}",
        ),
    ]
    if r["restart"]:
        rs = r["restart"]
        rows += [
            ("app restart (spawn to /healthz)", fmt(rs["app_restart_s"], " s")),
            ("sockets reconnected", f"{rs['connections_reconnected']:,} of {rs['connections']:,}"),
            (
                "kill to connection_ack p50 / max",
                f"{fmt(rs['kill_to_connection_ack_ms']['p50'])} / "
                f"{fmt(rs['kill_to_connection_ack_ms']['max'])}",
            ),
            (
                "kill to first event after resume p50 / max",
                f"{fmt(rs['kill_to_first_event_after_resume_ms']['p50'])} / "
                f"{fmt(rs['kill_to_first_event_after_resume_ms']['max'])}",
            ),
            (
                "app healthy to connection_ack p50 / max",
                f"{fmt(rs['healthy_to_connection_ack_ms']['p50'])} / "
                f"{fmt(rs['healthy_to_connection_ack_ms']['max'])}",
            ),
            ("deliveries by replay after resume", str(d["resumed_deliveries"])),
        ]
    for label, key in (("steady (before kill)", "cpu_steady"), ("whole load", "cpu_whole_load")):
        c = r[key]
        rows.append(
            (
                f"CPU, {label}: client / app / postgres+redis / machine",
                f"{c['client_core_pct']:.0f}% / {c['server_core_pct']:.0f}% / "
                f"{c['postgres_redis_core_pct']:.0f}% of a core / "
                f"{c['machine_busy_pct']:.0f}% of {c['machine_cores']} cores",
            )
        )
    lag = r["client_loop_lag_ms"]
    rows.append(("client event-loop lag p99 / max", f"{fmt(lag['p99'])} / {fmt(lag['max'])}"))
    res = r["app_resources"]
    rows.append(
        (
            "app fds (client / Redis / PostgreSQL sockets), RSS: before subscribers; "
            "subscribed; after load; after closing every socket",
            "; ".join(
                f"{v['fds']} ({v['clients']} / {v['redis']} / {v['postgres']}), "
                f"{v['rss_kb'] // 1024} MB"
                if v
                else "-"
                for k, v in res.items()
                if k != "redis_xread_connections"
            ),
        )
    )
    x = res["redis_xread_connections"]
    rows.append(
        (
            "Redis XREAD connections: before, subscribed, after close",
            f"{x['before_subscribers']}, {x['subscribed']}, {x['after_close']}",
        )
    )
    errors = r["client_errors"]
    rows.append(("socket closes seen by clients", str(errors["socket_closes"] or "none")))
    rows.append(("subscription errors", str(errors["subscription_errors"] or "none")))
    rows.append(("app log lines at WARNING+", str(r["app_log_warnings"]["count"])))
    print("| | |")
    print("| --- | --- |")
    for label, value in rows:
        print(f"| {label} | {value} |")


@contextlib.contextmanager
def signals_as_exit() -> Iterator[None]:
    """SIGTERM (and SIGINT) unwind through every ``finally``, so nothing is left behind."""

    def handler(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


async def main_async(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    name = f"chimera_bench_{os.getpid()}"
    db_url = database_url(args.database_url, name)
    redis = Redis.from_url(args.redis_url)
    await redis.flushdb()  # the bench's own database number: nothing else lives there
    await admin_execute(args.database_url, f'CREATE DATABASE "{name}"')
    vectors = None
    app: App | None = None
    try:
        if args.pgvector_url:
            pgvector_url = args.pgvector_url
        else:
            log("starting an embedded PostgreSQL (pgvector) for the vector index")
            vectors = start_embedded_postgres(tmp / "pgvector", delete_on_stop=True)
            await ensure_database(vectors.socket_dir, VECTOR_DATABASE)
            pgvector_url = vectors.url(VECTOR_DATABASE)
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(
                ("DATABASE_URL", "REDIS_URL", "PGVECTOR_URL", "CHIMERA_", "WEAVIATE")
            )
        }
        env.update(
            DATABASE_URL=db_url,
            REDIS_URL=args.redis_url,
            PGVECTOR_URL=pgvector_url,
            CHIMERA_AUTH_SECRET=secrets.token_hex(32),
            CHIMERA_DATA_DIR=str(tmp / "data"),
            CHIMERA_INDEXER="false",
        )
        for item in args.server_env:
            key, _, value = item.partition("=")
            env[key] = value
        app = App(env, args.port or free_port(), tmp / "app.log", args.app_root)
        log(f"starting the app on 127.0.0.1:{app.port} (log: {app.log_path})")
        await app.start()
        log(f"app up (pid {app.pid}) in {app.starts[-1]:.1f} s")
        try:
            results = await measure(args, app, db_url)
        except BaseException:
            log("the run failed; the app's log ends with:\n" + app.log_tail())
            raise
        results["app_starts_s"] = app.starts
        return results
    finally:
        if app is not None:
            app.stop()
            if args.app_log:
                with contextlib.suppress(OSError):
                    args.app_log.write_bytes(app.log_path.read_bytes())
        with contextlib.suppress(Exception):
            await admin_execute(args.database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        with contextlib.suppress(Exception):
            await redis.flushdb()
        await redis.aclose()
        if vectors is not None:
            vectors.stop()


def code_fingerprint(root: Path) -> dict[str, Any]:
    """Which code the app ran: HEAD, the files that differ from it, and a hash of every
    Python file the app imports (others may edit the checkout while a run is going)."""
    import hashlib

    digest = hashlib.sha256()
    for top in ("app", "resolvers", "loaders", "migrations"):
        for path in sorted((root / top).rglob("*.py")):
            digest.update(str(path.relative_to(root)).encode())
            digest.update(path.read_bytes())

    def git(*argv: str) -> str:
        done = subprocess.run(["git", *argv], cwd=root, capture_output=True, text=True, check=False)
        return done.stdout.strip()

    return {
        "head": git("rev-parse", "--short", "HEAD"),
        "modified": git("status", "--short", "--", "app", "resolvers", "loaders").splitlines(),
        "sha256": digest.hexdigest()[:16],
    }


def versions() -> dict[str, str]:
    from importlib.metadata import version

    found = {"python": platform.python_version()}
    for package in ("websockets", "uvicorn", "strawberry-graphql", "redis", "httpx", "uvloop"):
        with contextlib.suppress(Exception):
            found[package] = version(package)
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "unknown",
    )
    found["cpu"] = f"{os.cpu_count()} x {cpu}"
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--subscribers", type=int, default=1000, help="subscriptions in all")
    parser.add_argument(
        "--tenants", type=int, default=20, help="tenants the subscribers are spread over"
    )
    parser.add_argument("--campaigns", type=int, default=10, help="campaigns per tenant")
    parser.add_argument("--rate", type=float, default=50.0, help="updates committed per second")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of updates")
    parser.add_argument(
        "--kill-at",
        type=float,
        default=None,
        help="seconds into the load to SIGKILL and restart the app (default: half the duration)",
    )
    parser.add_argument("--no-restart", action="store_true", help="never kill the app")
    parser.add_argument(
        "--per-socket", type=int, default=1, help="subscriptions sharing one WebSocket (<= 20)"
    )
    parser.add_argument(
        "--drain", type=float, default=120.0, help="at most this long for the last deliveries"
    )
    parser.add_argument(
        "--block-wait",
        type=float,
        default=4.0,
        help="seconds after closing every socket before checking what the app still holds",
    )
    parser.add_argument(
        "--compression", action="store_true", help="offer permessage-deflate (browsers do)"
    )
    parser.add_argument("--no-uvloop", action="store_true", help="client on asyncio's own loop")
    parser.add_argument(
        "--database-url",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="a PostgreSQL server (any database); the bench creates and drops its own",
    )
    parser.add_argument(
        "--redis-url",
        default="redis://127.0.0.1:6379/14",
        help="a Redis database of the bench's own: FLUSHED before and after",
    )
    parser.add_argument("--pgvector-url", help="a database with pgvector (default: embedded)")
    parser.add_argument("--port", type=int, default=0, help="app port (default: a free one)")
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for the app (exploration; the report lists it)",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--app-log", type=Path, help="keep a copy of the app's log here")
    parser.add_argument(
        "--snapshot",
        action="store_true",
        help="run a copy of the app's code taken at the start (immune to edits during the run)",
    )
    parser.add_argument(
        "--app-root",
        type=Path,
        default=ROOT,
        help="run the app from this tree (e.g. a `git archive` snapshot; default: this checkout)",
    )
    parser.add_argument(
        "--py-spy",
        metavar="PATH",
        help="a py-spy executable: sample the app's CPU during the steady load (not installed "
        "by the project; e.g. a scratch venv's bin/py-spy)",
    )
    parser.add_argument(
        "--profile-out",
        type=Path,
        default=Path("subscriptions-profile.txt"),
        help="where --py-spy writes collapsed stacks",
    )
    args = parser.parse_args()
    if args.no_restart:
        args.kill_at = None
    elif args.kill_at is None:
        args.kill_at = args.duration / 2
    problems = []
    if not 1 <= args.subscribers <= MAX_SUBSCRIBERS:
        problems.append(f"--subscribers must be 1..{MAX_SUBSCRIBERS}")
    if not 1 <= args.tenants <= args.subscribers or args.subscribers % args.tenants:
        problems.append("--tenants must divide --subscribers")
    if not 0 < args.rate <= MAX_RATE or not 0 < args.duration <= MAX_DURATION:
        problems.append(f"--rate must be in (0, {MAX_RATE:g}], --duration in (0, {MAX_DURATION:g}]")
    if not 1 <= args.per_socket <= 20:
        problems.append("--per-socket must be 1..20 (the app's per-connection cap)")
    if args.kill_at is not None and not 0 < args.kill_at < args.duration:
        problems.append("--kill-at must fall inside the load")
    if "127.0.0.1" not in args.database_url and "localhost" not in args.database_url:
        problems.append("--database-url must be on this machine")
    if not args.redis_url.startswith(("redis://127.0.0.1", "redis://localhost")):
        problems.append("--redis-url must be on this machine")
    if problems:
        parser.error("; ".join(problems))

    config = {
        "subscribers": args.subscribers,
        "tenants": args.tenants,
        "subscribers_per_tenant": args.subscribers // args.tenants,
        "campaigns_per_tenant": args.campaigns,
        "rate": args.rate,
        "duration": args.duration,
        "kill_at": args.kill_at,
        "per_socket": args.per_socket,
        "compression": args.compression,
        "client_loop": "asyncio" if args.no_uvloop else "uvloop",
        "server_env": args.server_env,
        "versions": versions(),
        "app_root": str(args.app_root),
        "code": code_fingerprint(args.app_root),
        "load_average_before": os.getloadavg(),
    }
    loop_factory = None
    if not args.no_uvloop:
        import uvloop

        loop_factory = uvloop.new_event_loop
    started = time.monotonic()
    with (
        signals_as_exit(),
        tempfile.TemporaryDirectory(prefix="chimera-subs-bench-") as tmp,
        asyncio.Runner(loop_factory=loop_factory) as runner,
    ):
        if args.snapshot:
            # The app's code as it is now, copied: a restart mid-run then runs the same code
            # even if someone edits the checkout meanwhile.
            code = Path(tmp) / "code"
            for top in ("app", "resolvers", "loaders", "migrations"):
                shutil.copytree(
                    args.app_root / top, code / top, ignore=shutil.ignore_patterns("__pycache__")
                )
            args.app_root = code
            config["code"]["snapshot_sha256"] = code_fingerprint(code)["sha256"]
        results = runner.run(
            asyncio.wait_for(main_async(args, Path(tmp)), timeout=args.duration + 600)
        )
    config["load_average_after"] = os.getloadavg()
    if args.snapshot:
        config["code_changed_during_run"] = False
    else:
        after = code_fingerprint(args.app_root)["sha256"]
        config["code_changed_during_run"] = after != config["code"]["sha256"]
    if config["code_changed_during_run"]:
        log("WARNING: the app's code changed during the run; the numbers mix two versions")
    config["total_s"] = time.monotonic() - started
    print_report(config, results)
    if args.json:
        args.json.write_text(json.dumps({"config": config, "results": results}, indent=2))
        log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
