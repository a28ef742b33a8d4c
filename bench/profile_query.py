"""CPU per request of the dashboard queries, in process, with an optional profile.

The load benchmark (bench/dashboard.py) measures the service from outside under wrk; this
one answers the question a developer asks while making it faster: how many milliseconds of
this process's CPU does one request cost, at which page size, and where do they go. It
drives the real app (lifespan, middleware, view, schema, loaders, stores) through ASGI in
one process, one request at a time, so the numbers are the app's own work and nothing else.

    .venv/bin/python bench/profile_query.py --database-url postgresql://postgres@127.0.0.1/postgres \
        --redis-url redis://127.0.0.1:6379/14 [--query B|C] [--first 50] [--profile out.prof]

Without URLs it starts the embedded engines in a temporary directory. The dataset (one
tenant, 1,000 campaigns, 200 agents, 5 agents and 4 READY media per campaign, counters in
Redis) is created in a scratch database that is dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import os
import pstats
import random
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg
from asgi_lifespan import LifespanManager
from redis.asyncio import Redis

from app import migrations
from app.auth import Role, mint_token
from app.main import create_app
from app.seed import seed_running_tasks
from app.settings import Settings
from app.stores.postgres.engine import create_engine
from app.stores.redis import keys
from bench.unthrottled import BUCKET

SECRET = "profile-secret-that-is-long-enough-for-hs256"

QUERY_B = """
query DashboardB($first: Int!) {
  campaigns(first: $first) {
    edges { cursor node {
      id name goal status budget startsAt endsAt createdAt updatedAt
      agents(first: 5) { edges { node { id name persona status } } }
      media(first: 4) { edges { node { id kind contentType filename sizeBytes status createdAt } } }
    } }
    pageInfo { hasNextPage endCursor }
  }
}
"""

QUERY_C = """
query DashboardC($first: Int!) {
  campaigns(first: $first) {
    edges { cursor node {
      id name goal status budget startsAt endsAt createdAt updatedAt
      engagement { impressions clicks likes shares comments }
      similar(limit: 3) { score campaign { id name } }
      agents(first: 5) { edges { node { id name persona status activeTasks } } }
      media(first: 4) { edges { node {
        id kind contentType filename sizeBytes status createdAt url } } }
    } }
    pageInfo { hasNextPage endCursor }
  }
}
"""

QUERY_TINY = "query Tiny { viewer { role } }"

QUERY_SIMILAR = """
query Similar($first: Int!) {
  campaigns(first: $first) { edges { node { id similar(limit: 3) { score campaign { id name } } } } }
}
"""

QUERIES = {"B": QUERY_B, "C": QUERY_C, "tiny": QUERY_TINY, "similar": QUERY_SIMILAR}


async def seed(dsn: str, redis_url: str, tenant_id: uuid.UUID, rng: random.Random) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "INSERT INTO tenant (id, slug, name, rate_capacity, rate_per_second,"
            " client_rate_capacity, client_rate_per_second) VALUES ($1, $2, $3, $4, $5, $4, $5)",
            tenant_id,
            f"bench-{tenant_id.hex[:8]}",
            "Bench",
            BUCKET,
            float(BUCKET),
        )
        base = datetime(2026, 1, 1, tzinfo=UTC)
        agents = [
            (uuid.uuid4(), tenant_id, f"Agent {i}", f"Persona of agent {i}", "ACTIVE")
            for i in range(200)
        ]
        await conn.copy_records_to_table(
            "agent",
            records=[(*a, base + timedelta(minutes=i)) for i, a in enumerate(agents)],
            columns=["id", "tenant_id", "name", "persona", "status", "created_at"],
        )
        statuses = ["DRAFT", "ACTIVE", "PAUSED", "COMPLETED", "ARCHIVED"]
        campaigns = []
        for i in range(1000):
            campaigns.append(
                (
                    uuid.uuid4(),
                    tenant_id,
                    f"Campaign {i}",
                    f"Goal number {i} about spring fashion and sneakers",
                    statuses[i % 5],
                    rng.randint(100, 100_000),
                    base + timedelta(days=i % 30),
                    base + timedelta(days=30 + i % 30),
                    base + timedelta(minutes=i),
                )
            )
        await conn.copy_records_to_table(
            "campaign",
            records=campaigns,
            columns=[
                "id",
                "tenant_id",
                "name",
                "goal",
                "status",
                "budget",
                "starts_at",
                "ends_at",
                "created_at",
            ],
        )
        members, media = [], []
        for i, c in enumerate(campaigns):
            for j, a in enumerate(rng.sample(agents, 5)):
                members.append((tenant_id, c[0], a[0], base + timedelta(minutes=i, seconds=j)))
            for j in range(4):
                pk = uuid.uuid4()
                name = f"image-{j}.png"
                media.append(
                    (
                        pk,
                        tenant_id,
                        c[0],
                        f"tenants/{tenant_id}/media/{pk}/{name}",
                        "IMAGE",
                        "image/png",
                        name,
                        1000 + j,
                        "READY",
                        base + timedelta(minutes=i, seconds=j),
                    )
                )
        await conn.copy_records_to_table(
            "campaign_agent",
            records=members,
            columns=["tenant_id", "campaign_id", "agent_id", "assigned_at"],
        )
        await conn.copy_records_to_table(
            "media_asset",
            records=media,
            columns=[
                "id",
                "tenant_id",
                "campaign_id",
                "object_key",
                "kind",
                "content_type",
                "filename",
                "size_bytes",
                "status",
                "created_at",
            ],
        )
    finally:
        await conn.close()
    redis = Redis.from_url(redis_url)
    try:
        async with redis.pipeline(transaction=False) as pipe:
            for c in campaigns:
                pipe.hset(
                    keys.campaign_engagement(tenant_id, c[0]),
                    mapping={f: rng.randint(0, 10_000) for f in keys.ENGAGEMENT_FIELDS},
                )
            await pipe.execute()
        await seed_running_tasks(redis, tenant_id, {a[0]: rng.randint(0, 9) for a in agents})
    finally:
        await redis.aclose()


async def seed_vectors(app: Any, tenant_id: uuid.UUID) -> None:
    """One vector per campaign, clustered around 24 directions (as in bench/dashboard.py),
    through the app's own index: what Campaign.similar searches."""
    from app.stores.vectors.port import DIMENSIONS, VectorKind, VectorRecord

    stores = app.state.stores
    async with stores.engine.connect() as conn:
        rows = await conn.exec_driver_sql(
            "SELECT id, goal FROM campaign WHERE tenant_id = $1", (tenant_id,)
        )
        campaigns = list(rows)
    rng = random.Random(11)
    centres = [[rng.gauss(0, 1) for _ in range(DIMENSIONS)] for _ in range(24)]
    records = []
    for n, (pk, goal) in enumerate(campaigns):
        vector = [c + rng.gauss(0, 0.4) for c in centres[n % 24]]
        norm = sum(v * v for v in vector) ** 0.5
        unit = [v / norm for v in vector]
        records.append(VectorRecord(VectorKind.CAMPAIGN, pk, unit, goal))
    for start in range(0, len(records), 500):
        await stores.vectors.upsert(tenant_id, records[start : start + 500])


def plain_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def run(args: argparse.Namespace) -> None:
    from tests.engines import (
        create_database,
        drop_database,
        embedded_postgres_server,
        has_extension,
        redis_server,
    )

    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        server = args.database_url or stack.enter_context(embedded_postgres_server(tmp / "pg"))
        server = server.replace("postgresql://", "postgresql+asyncpg://", 1)
        redis_url = args.redis_url or stack.enter_context(redis_server(tmp / "redis"))
        url = await create_database(server, prefix="chimera_profile")
        vector_server = server
        if not await has_extension(server, "vector"):
            vector_server = stack.enter_context(embedded_postgres_server(tmp / "pgvector"))
        vector_url = await create_database(vector_server, prefix="chimera_profile_vec")
        try:
            engine = create_engine(url, timeout=10)
            await migrations.upgrade(engine)
            await engine.dispose()
            tenant_id = uuid.uuid4()
            await seed(plain_dsn(url), redis_url, tenant_id, random.Random(7))
            settings = Settings(
                database_url=url,
                redis_url=redis_url,
                pgvector_url=vector_url,
                indexer_enabled=False,
                relay_enabled=False,
                media_sweep_seconds=0,
                auth_secret=SECRET,
                data_dir=tmp / "data",
                env=args.env,
            )
            await measure(settings, tenant_id, args)
        finally:
            await drop_database(url)
            await drop_database(vector_url)


async def measure(
    settings: Settings,
    tenant_id: uuid.UUID,
    args: argparse.Namespace,
    document: str | None = None,
    variables: dict[str, Any] | None = None,
) -> float:
    """Serve ``args.query`` (or ``document`` with ``variables``) and print what it cost;
    returns the process's CPU milliseconds per request (0 for --memory)."""
    app = create_app(settings)
    token = mint_token(
        SECRET,
        tenant_id=tenant_id,
        tenant_slug=f"bench-{tenant_id.hex[:8]}",  # as seed() names it
        role=Role.VIEWER,
        subject="bench",
        ttl_seconds=3600,
    )
    body = json.dumps(
        {
            "query": document or QUERIES[args.query],
            "variables": {"first": args.first} if variables is None else variables,
        }
    )
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    raw_headers = [(k.encode(), v.encode()) for k, v in headers.items()]
    encoded = body.encode()
    raw_headers.append((b"content-length", str(len(encoded)).encode()))
    async with LifespanManager(app):
        await seed_vectors(app, tenant_id)

        async def once() -> dict[str, Any]:
            """One request straight through the ASGI interface, as a server calls it: no
            HTTP client in the measurement."""
            scope = {
                "type": "http",
                "asgi": {"version": "3.0"},
                "http_version": "1.1",
                "method": "POST",
                "scheme": "http",
                "path": "/graphql",
                "raw_path": b"/graphql",
                "query_string": b"",
                "root_path": "",
                "headers": raw_headers,
                "client": ("127.0.0.1", 5000),
                "server": ("127.0.0.1", 8000),
                "state": {},
            }
            sent = False
            chunks: list[bytes] = []

            async def receive() -> dict[str, Any]:
                nonlocal sent
                if sent:
                    await asyncio.sleep(3600)
                sent = True
                return {"type": "http.request", "body": encoded, "more_body": False}

            async def send(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.body":
                    chunks.append(message.get("body", b""))

            await app(scope, receive, send)
            if not args.check:
                return {}
            result: dict[str, Any] = json.loads(b"".join(chunks))
            return result

        args.check = True
        first = await once()
        args.check = False
        if args.dump:
            await asyncio.to_thread(Path(args.dump).write_text, json.dumps(first))
        if first.get("errors"):
            print(json.dumps(first["errors"], indent=1)[:2000])
        if first.get("data") is None:
            # A refused request costs next to nothing: its figure would measure nothing.
            raise SystemExit("profile_query: the request was refused (no data); nothing to measure")
        for _ in range(args.warmup):
            await once()
        if args.memory:
            await memory_growth(once, args.requests)
            return 0.0
        profiler = cProfile.Profile() if args.profile else None
        gc_time = [0.0, 0.0]
        by_generation = [[0, 0.0], [0, 0.0], [0, 0.0]]

        def timed_gc(phase: str, info: dict[str, int]) -> None:
            if phase == "start":
                gc_time[1] = time.process_time()
            else:
                spent = time.process_time() - gc_time[1]
                gc_time[0] += spent
                by_generation[info["generation"]][0] += 1
                by_generation[info["generation"]][1] += spent

        gc.callbacks.append(timed_gc)
        print(f"measuring in process {os.getpid()}", flush=True)
        if args.callgrind:
            callgrind_instrumentation("on")
        cpu, wall, main = time.process_time(), time.perf_counter(), time.thread_time()
        if profiler:
            profiler.enable()
        per_client = args.requests // args.concurrency

        async def client() -> None:
            for _ in range(per_client):
                await once()

        await asyncio.gather(*(client() for _ in range(args.concurrency)))
        if profiler:
            profiler.disable()
        if args.callgrind:
            callgrind_instrumentation("off")
        gc.callbacks.remove(timed_gc)
        print(
            f"garbage collection: {gc_time[0] / args.requests * 1000:.2f} ms/request; "
            + ", ".join(
                f"gen{n}: {count} runs, {spent * 1000:.0f} ms"
                for n, (count, spent) in enumerate(by_generation)
            )
        )
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        main = time.thread_time() - main
        print(f"main thread: {main / args.requests * 1000:.2f} ms CPU/request")
        print(
            f"query {args.query} first={args.first}: "
            f"{cpu / args.requests * 1000:.2f} ms CPU/request, "
            f"{wall / args.requests * 1000:.2f} ms wall/request over {args.requests} requests"
        )
        if profiler:
            profiler.dump_stats(args.profile)
            stats = pstats.Stats(profiler).sort_stats("cumulative")
            stats.print_stats(40)
            stats.sort_stats("tottime").print_stats(40)
        return cpu / args.requests * 1000


def callgrind_instrumentation(state: str) -> None:
    """Under ``valgrind --tool=callgrind --instr-atstart=no``: count instructions only while
    the measured requests run (start-up, seeding and warm-up are left out)."""
    import subprocess

    subprocess.run(["callgrind_control", "-i", state, str(os.getpid())], check=True)


def print_cycles() -> None:
    """The reference cycles among gc.garbage (strongly connected components), by type."""
    import gc

    objects = {id(o): o for o in gc.garbage}
    edges = {
        k: [id(r) for r in gc.get_referents(o) if id(r) in objects] for k, o in objects.items()
    }
    index: dict[int, int] = {}
    low: dict[int, int] = {}
    stack: list[int] = []
    on: set[int] = set()
    sccs: list[list[int]] = []
    counter = [0]

    def strong(v: int) -> None:
        work = [(v, iter(edges[v]))]
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        while work:
            node, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(edges[w])))
                    break
                if w in on:
                    low[node] = min(low[node], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        component.append(w)
                        if w == node:
                            break
                    if len(component) > 1:
                        sccs.append(component)

    for v in objects:
        if v not in index:
            strong(v)
    for component in sccs[:8]:
        names = {}
        for k in component:
            o = objects[k]
            label = type(o).__qualname__
            if callable(o) and hasattr(o, "__qualname__"):
                label += f"({o.__qualname__})"
            names[label] = names.get(label, 0) + 1
        print("  cycle:", sorted(names.items(), key=lambda kv: -kv[1])[:12])


async def memory_growth(once: Any, requests: int) -> None:
    """RSS and the Python allocations still alive after ``requests`` more requests, with
    where the growth was allocated: the check for a leak per request."""
    import gc
    import tracemalloc

    import psutil

    process = psutil.Process()
    gc.collect()
    gc.disable()
    for _ in range(100):
        await once()
    cyclic = gc.collect()
    gc.enable()
    print(f"cyclic garbage: {cyclic / 100:.0f} objects per request")
    if cyclic:
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.disable()
        await once()
        gc.collect()
        kinds: dict[str, int] = {}
        for obj in gc.garbage:
            kinds[type(obj).__qualname__] = kinds.get(type(obj).__qualname__, 0) + 1
        gc.set_debug(0)
        gc.enable()
        print("  by type:", sorted(kinds.items(), key=lambda kv: -kv[1])[:25])
        if os.environ.get("CYCLES"):
            print_cycles()
        gc.garbage.clear()
    tracemalloc.start(25)
    gc.collect()
    before, rss_before = tracemalloc.take_snapshot(), process.memory_info().rss
    for _ in range(requests):
        await once()
    gc.collect()
    after, rss_after = tracemalloc.take_snapshot(), process.memory_info().rss
    print(f"RSS {rss_before / 2**20:.1f} -> {rss_after / 2**20:.1f} MiB over {requests} requests")
    for stat in after.compare_to(before, "traceback")[:12]:
        print(f"{stat.size_diff / 1024:+.1f} KiB in {stat.count_diff:+d} blocks")
        for line in stat.traceback.format()[-8:]:
            print("   ", line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url")
    parser.add_argument("--redis-url")
    parser.add_argument("--query", choices=sorted(QUERIES), default="B")
    parser.add_argument("--first", type=int, default=50)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument(
        "--concurrency", type=int, default=1, help="requests in flight at once (as wrk -c)"
    )
    parser.add_argument("--env", default="production", choices=["dev", "production"])
    parser.add_argument("--profile", help="write a cProfile file and print the top entries")
    parser.add_argument(
        "--callgrind",
        action="store_true",
        help="run under valgrind --tool=callgrind --instr-atstart=no: count only the requests",
    )
    parser.add_argument("--dump", help="write the first response to this file")
    parser.add_argument(
        "--memory", action="store_true", help="report memory growth over the requests"
    )
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
