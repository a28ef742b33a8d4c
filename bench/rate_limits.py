"""A tenant over its rate limit gets 429s; does another tenant's latency hold?

One app server (uvicorn, one worker, production settings) on a scratch database, two
tenants with the same data (20 campaigns of 5 agents each). The *quiet* tenant sends a
dashboard query at a steady rate and its latency is measured three times:

1. alone (the unloaded figure);
2. while the *noisy* tenant sends the same query ten times faster than its limit allows
   (open loop: requests leave on schedule whether or not earlier ones were answered): most
   are refused with 429 before they execute;
3. the same load on a server with rate limits off (`CHIMERA_RATE_LIMITS=false`): every noisy
   request runs. What the limits buy is the difference between 2 and 3.

Bounded in count and time, loopback only.

    .venv/bin/python bench/rate_limits.py --database-url postgresql://postgres@127.0.0.1:5432/postgres \
        --redis-url redis://127.0.0.1:6379/0 [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from dashboard_servers import Server, clean_env, free_port, uvicorn_argv
from unthrottled import UNLIMITED

from app import migrations
from app.auth import Role, mint_token
from app.stores.postgres.engine import create_engine
from app.stores.postgres.tables import agent, campaign, campaign_agent, tenant
from tests.engines import create_database, drop_database, embedded_postgres_server, has_extension

SECRET = "bench-secret-that-is-long-enough-for-hs256"
ROOT = Path(__file__).resolve().parent.parent
QUERY = """query Dashboard { campaigns(first: 20) { edges { node { id name status budget
  agents(first: 5) { edges { node { id name persona status } } } } } } }"""
# Priced 1 + 20 x (2 + 1 + 5 x 2) = 261 points. The noisy tenant's buckets pay 10 of them a
# second (after a burst of about 8): it is limited to ~10 requests a second... of this one.
NOISY_LIMITS = {
    "rate_capacity": 2_000,
    "rate_per_second": 2_610.0,
    "client_rate_capacity": 2_000,
    "client_rate_per_second": 2_610.0,
}


@dataclass
class Tenant:
    id: uuid.UUID
    slug: str

    def token(self) -> str:
        return mint_token(
            SECRET,
            tenant_id=self.id,
            tenant_slug=self.slug,
            role=Role.VIEWER,
            subject=f"bench-{self.slug}",
            ttl_seconds=3600,
        )


async def make_tenant(engine: object, name: str, limits: dict[str, int | float]) -> Tenant:
    from sqlalchemy.ext.asyncio import AsyncEngine

    assert isinstance(engine, AsyncEngine)
    tid = uuid.uuid4()
    slug = f"{name}-{tid.hex[:6]}"
    async with engine.begin() as conn:
        await conn.execute(tenant.insert().values(id=tid, slug=slug, name=slug, **limits))
        agents = [uuid.uuid4() for _ in range(100)]
        await conn.execute(
            agent.insert(),
            [{"id": a, "tenant_id": tid, "name": f"Agent {i}"} for i, a in enumerate(agents)],
        )
        campaigns = [uuid.uuid4() for _ in range(20)]
        await conn.execute(
            campaign.insert(),
            [{"id": c, "tenant_id": tid, "name": f"Campaign {i}"} for i, c in enumerate(campaigns)],
        )
        await conn.execute(
            campaign_agent.insert(),
            [
                {"tenant_id": tid, "campaign_id": c, "agent_id": agents[(i * 5 + j) % 100]}
                for i, c in enumerate(campaigns)
                for j in range(5)
            ],
        )
    return Tenant(tid, slug)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def paced(
    client: httpx.AsyncClient, url: str, token: str, rate: float, seconds: float
) -> tuple[list[float], Counter[int]]:
    """Requests sent on a fixed schedule (open loop); latencies of those answered 200."""
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    body = {"query": QUERY}
    headers = {"Authorization": f"Bearer {token}"}

    async def one() -> None:
        started = time.perf_counter()
        try:
            response = await client.post(url, json=body, headers=headers)
        except httpx.HTTPError:
            statuses[0] += 1
            return
        statuses[response.status_code] += 1
        if response.status_code == 200:
            latencies.append((time.perf_counter() - started) * 1000)

    tasks = []
    start = time.perf_counter()
    n = 0
    while (due := start + n / rate) < start + seconds:
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        tasks.append(asyncio.create_task(one()))
        n += 1
    await asyncio.gather(*tasks)
    return latencies, statuses


def server(database: str, vectors: str, redis_url: str, data_dir: Path, limits: bool) -> Server:
    port = free_port()
    env = clean_env(
        DATABASE_URL=database,
        PGVECTOR_URL=vectors,
        REDIS_URL=redis_url,
        CHIMERA_ENV="production",
        CHIMERA_AUTH_SECRET=SECRET,
        CHIMERA_DATA_DIR=str(data_dir),
        CHIMERA_PUBLIC_URL=f"http://127.0.0.1:{port}",
        CHIMERA_INDEXER="false",
        CHIMERA_RELAY="false",
        CHIMERA_MEDIA_SWEEP_SECONDS="0",
        CHIMERA_RATE_LIMITS="true" if limits else "false",
        CHIMERA_ACCESS_LOG="false",  # as uvicorn's --no-access-log
        PYTHONPATH=str(ROOT),
    )
    return Server(
        key="limits" if limits else "nolimits",
        label=f"app (rate limits {'on' if limits else 'off'})",
        argv=uvicorn_argv("app.main:create_app", port),
        env=env,
        cwd=ROOT,
        port=port,
        log_path=data_dir / f"server-{'on' if limits else 'off'}.log",
    )


async def phase(
    url: str, quiet: Tenant, noisy: Tenant | None, args: argparse.Namespace
) -> dict[str, object]:
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        # Warm both tenants' caches (plans, known tenants) before measuring.
        for who in (quiet, noisy):
            if who is not None:
                await client.post(
                    url, json={"query": QUERY}, headers={"Authorization": f"Bearer {who.token()}"}
                )
        quiet_run = paced(client, url, quiet.token(), args.quiet_rate, args.seconds)
        if noisy is None:
            latencies, statuses = await quiet_run
            noisy_statuses: Counter[int] = Counter()
        else:
            noisy_run = paced(client, url, noisy.token(), args.noisy_rate, args.seconds)
            (latencies, statuses), (_, noisy_statuses) = await asyncio.gather(quiet_run, noisy_run)
    return {
        "p50": statistics.median(latencies),
        "p95": percentile(latencies, 0.95),
        "p99": percentile(latencies, 0.99),
        "quiet": dict(statuses),
        "noisy": dict(noisy_statuses),
    }


async def main(args: argparse.Namespace) -> None:
    pg = args.database_url.replace("postgresql://", "postgresql+asyncpg://", 1)
    with ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        database = await create_database(pg, prefix="chimera_bench_limits")
        vector_server = pg
        if not await has_extension(pg, "vector"):
            vector_server = stack.enter_context(embedded_postgres_server(scratch / "pgvector"))
        vectors = await create_database(vector_server, prefix="chimera_bench_limits_vec")
        try:
            engine = create_engine(database, timeout=10)
            await migrations.upgrade(engine)
            quiet = await make_tenant(engine, "quiet", UNLIMITED)
            noisy = await make_tenant(engine, "noisy", NOISY_LIMITS)
            await engine.dispose()
            results: dict[str, dict[str, object]] = {}
            for name, limits, loud in (
                ("alone", True, False),
                ("beside a tenant over its limit", True, True),
                ("the same, rate limits off", False, True),
            ):
                app = server(database, vectors, args.redis_url, scratch / name[:5], limits)
                app.start()
                try:
                    results[name] = await phase(app.url, quiet, noisy if loud else None, args)
                finally:
                    app.stop()
                print(f"{name}: {results[name]}", flush=True)
        finally:
            await drop_database(database)
            await drop_database(vectors)
    alone = results["alone"]
    print()
    print(
        "| quiet tenant's dashboard query | p50 ms | p95 ms | p99 ms | p50 vs alone | noisy tenant's answers |"
    )
    print("|---|---|---|---|---|---|")
    for name, r in results.items():
        ratio = float(r["p50"]) / float(alone["p50"])  # type: ignore[arg-type]
        noisy = ", ".join(f"{n} x {code}" for code, n in sorted(r["noisy"].items())) or "-"  # type: ignore[attr-defined]
        print(
            f"| {name} | {r['p50']:.1f} | {r['p95']:.1f} | {r['p99']:.1f} | {ratio:.2f}x | {noisy} |"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--quiet-rate", type=float, default=10.0, help="quiet tenant, req/s")
    parser.add_argument("--noisy-rate", type=float, default=100.0, help="noisy tenant, req/s")
    asyncio.run(main(parser.parse_args()))
