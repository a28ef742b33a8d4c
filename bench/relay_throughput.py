"""How many outbox events per second the relay carries from commit to stream, with 1, 2 and 4
partitions (CHIMERA_RELAY_PARTITIONS) and as many relay processes.

Run: ``.venv/bin/python bench/relay_throughput.py`` (``--help``; about two minutes). With
``--write`` it puts the table into docs/benchmarks.md between its markers. Only 127.0.0.1.

Each setup: its relay processes (each `run_forever(partition_count=N)`, as `chimera worker`
runs it) start and wait on an empty outbox; then ``--events`` UPDATED campaign events over
``--tenants`` tenants commit in one transaction, and the clock runs from that commit until
PostgreSQL has no unpublished event left. Every event is then checked in its tenant's Redis
Stream, once, in outbox order. The database is one of its own on ``--database-url``'s
server (dropped at the end); Redis is one database of ``--redis-url`` (flushed before and
after).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from redis.asyncio import Redis  # noqa: E402
from sqlalchemy import func, select, text  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncEngine  # noqa: E402

from app import migrations  # noqa: E402
from app.stores.postgres.engine import create_engine  # noqa: E402
from app.stores.postgres.tables import outbox  # noqa: E402
from app.stores.redis import keys  # noqa: E402
from app.stores.redis.client import create_redis  # noqa: E402
from app.stores.redis.scripts import load_scripts  # noqa: E402
from bench.doc_blocks import replace_block  # noqa: E402
from tests.engines import create_database, drop_database  # noqa: E402

SETUPS = ((1, 1), (1, 2), (2, 2), (4, 2), (4, 4))  # (partitions, relay processes)


@dataclass
class Result:
    partitions: int
    processes: int
    events: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.events / self.seconds


async def _worker(database_url: str, redis_url: str, partitions: int) -> None:
    from app.events.relay import run_forever

    engine = create_engine(database_url, timeout=30, pool_size=partitions + 2)
    redis = create_redis(redis_url, timeout=30)
    await load_scripts(redis)
    print("ready", flush=True)
    try:
        await run_forever(engine, redis, partition_count=partitions)
    finally:
        await engine.dispose()
        await redis.aclose()


async def _commit_events(engine: AsyncEngine, tenants: list[uuid.UUID], events: int) -> float:
    """``events`` campaign UPDATED events, round robin over ``tenants``, in one transaction;
    the moment it committed."""
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO outbox (tenant_id, aggregate_type, aggregate_id, event_type, payload) "
                "SELECT ((:tenants)::uuid[])[1 + (n % :count)], 'campaign', gen_random_uuid(), "
                "'UPDATED', '{}'::jsonb FROM generate_series(0, :events - 1) AS n"
            ),
            {"tenants": [str(t) for t in tenants], "count": len(tenants), "events": events},
        )
    return time.monotonic()


async def _unpublished(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        count = await conn.scalar(
            select(func.count()).select_from(outbox).where(outbox.c.published_at.is_(None))
        )
    return int(count or 0)


async def _check_streams(engine: AsyncEngine, redis: Redis, tenants: list[uuid.UUID]) -> None:
    async with engine.connect() as conn:
        for tenant_id in tenants:
            expected = list(
                await conn.scalars(
                    select(outbox.c.id).where(outbox.c.tenant_id == tenant_id).order_by(outbox.c.id)
                )
            )
            entries: Any = await redis.xrange(keys.event_stream(tenant_id))
            seen = [int(fields[b"event"]) for _, fields in entries]
            if seen != expected:
                raise SystemExit(f"tenant {tenant_id}: stream differs from the outbox")


async def _one(args: argparse.Namespace, url: str, partitions: int, processes: int) -> Result:
    engine = create_engine(url, timeout=30)
    redis = create_redis(args.redis_url, timeout=30)
    workers: list[asyncio.subprocess.Process] = []
    try:
        await redis.flushdb()
        async with engine.begin() as conn:
            await conn.execute(text("TRUNCATE outbox, tenant CASCADE"))
            tenants = [uuid.uuid4() for _ in range(args.tenants)]
            for tenant_id in tenants:
                await conn.execute(
                    text("INSERT INTO tenant (id, slug, name) VALUES (:id, :slug, 'bench')"),
                    {"id": tenant_id, "slug": f"b-{tenant_id.hex[:12]}"},
                )
        for _ in range(processes):
            worker = await asyncio.create_subprocess_exec(
                sys.executable, __file__, "--worker", "--partitions", str(partitions),
                "--database-url", url, "--redis-url", args.redis_url,
                stdout=asyncio.subprocess.PIPE,
            )  # fmt: skip
            workers.append(worker)
        for worker in workers:  # each has connected and is waiting for events
            assert worker.stdout is not None
            if (await worker.stdout.readline()).strip() != b"ready":
                raise SystemExit("a relay worker did not start")
        await asyncio.sleep(1.0)  # their LISTEN connections are up
        committed = await _commit_events(engine, tenants, args.events)
        while await _unpublished(engine):  # noqa: ASYNC110 - the relays' work is in PostgreSQL
            await asyncio.sleep(0.01)
        seconds = time.monotonic() - committed
        await _check_streams(engine, redis, tenants)
        return Result(partitions, processes, args.events, seconds)
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            await asyncio.wait_for(worker.wait(), timeout=30)
        await redis.flushdb()
        await redis.aclose()
        await engine.dispose()


def report(results: list[Result], cores: int) -> str:
    base = results[0].per_second
    lines = [
        f"{results[0].events:,} campaign events over many tenants committed at once, relayed "
        f"to their Redis Streams ({cores} cores shared by the relays, PostgreSQL and Redis):",
        "",
        "| partitions | relay processes | seconds | events/s | vs one |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.partitions} | {r.processes} | {r.seconds:.2f} | {r.per_second:,.0f} | "
            f"{r.per_second / base:.2f}x |"
        )
    return "\n".join(lines)


async def _main(args: argparse.Namespace) -> list[Result]:
    url = await create_database(
        args.database_url.replace("postgresql://", "postgresql+asyncpg://", 1),
        prefix="chimera_relay_bench",
    )
    try:
        engine = create_engine(url, timeout=30)
        await migrations.upgrade(engine)
        await engine.dispose()
        return [await _one(args, url, p, n) for p, n in SETUPS]
    finally:
        await drop_database(url)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--tenants", type=int, default=200)
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--partitions", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        asyncio.run(_worker(args.database_url, args.redis_url, args.partitions))
        return 0
    results = asyncio.run(_main(args))
    text_block = report(results, os.cpu_count() or 1)
    print(text_block)
    if args.write:
        replace_block("relay-throughput", "The outbox relay's throughput", text_block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
