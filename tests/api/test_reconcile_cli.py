"""`chimera reconcile`, run as an operator runs it: it reports the drift between engagement
counters and committed events, repairs it, and then reports none."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest_asyncio
from redis.asyncio import Redis
from sqlalchemy import text

from app import migrations
from app.auth import Principal, Role
from app.commands.campaigns import create_campaign
from app.commands.engagement import record_engagement
from app.commands.tenants import create_tenant
from app.stores.postgres.engine import create_engine
from app.stores.redis import keys
from app.stores.redis.client import create_redis
from tests.engines import create_database, drop_database
from tests.processes import chimera_env, run_chimera
from tests.support import SECRET


@pytest_asyncio.fixture
async def fresh_db(pg_server_url: str) -> AsyncIterator[str]:
    url = await create_database(pg_server_url, prefix="chimera_reconcile")
    engine = create_engine(url, timeout=10)
    try:
        await migrations.upgrade(engine)
    finally:
        await engine.dispose()
    yield url
    await drop_database(url)


CLEAN = "ledger totals and metrics match their sources"


async def test_reconcile_reports_the_drift_repairs_it_and_then_reports_none(
    fresh_db: str, redis_url: str
) -> None:
    engine = create_engine(fresh_db, timeout=10)
    redis: Redis = create_redis(redis_url, timeout=5)
    written: list[str] = []
    try:
        row = await create_tenant(engine, f"r-{uuid.uuid4().hex[:10]}")
        principal = Principal(row.id, row.slug, Role.EDITOR, "test")
        campaign = await create_campaign(
            engine,
            principal,
            name="Launch",
            goal="",
            budget=Decimal(0),
            starts_at=None,
            ends_at=None,
        )
        await record_engagement(engine, redis, principal, campaign.id, "shares", 281, timeout=5)
        # What a process killed between its increment and its commit left, before ADR 0019.
        counters = keys.campaign_engagement(row.id, campaign.id)
        written.append(counters)
        await redis.hincrby(counters, "shares", 4)
        env = chimera_env(DATABASE_URL=fresh_db, REDIS_URL=redis_url, CHIMERA_AUTH_SECRET=SECRET)
        line = f"tenant {row.id} campaign {campaign.id} shares: redis 285, events 281 (+4)"

        check = run_chimera("reconcile", "--check", env=env)
        assert check.returncode == 1, check.stdout + check.stderr
        assert check.stdout.splitlines() == [f"drift: {line}", CLEAN]
        assert await redis.hget(counters, "shares") == b"285"

        repair = run_chimera("reconcile", env=env)
        assert repair.returncode == 0, repair.stdout + repair.stderr
        assert repair.stdout.splitlines() == [f"repaired: {line}", CLEAN]
        assert await redis.hget(counters, "shares") == b"281"

        again = run_chimera("reconcile", "--check", env=env)
        assert again.returncode == 0, again.stdout + again.stderr
        assert again.stdout.splitlines() == [
            "counters match PostgreSQL (1 campaigns, 1 events)",
            CLEAN,
        ]

        # A hand edit of what PostgreSQL derives: reported, repaired, then gone.
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO campaign_metric (tenant_id, campaign_id, minute, clicks) "
                    "VALUES (:t, :c, date_trunc('minute', now()), 5)"
                ),
                {"t": row.id, "c": campaign.id},
            )
        metrics = f"tenant {row.id} campaign {campaign.id} metrics: clicks 5 stored, 0 in events"
        check = run_chimera("reconcile", "--check", env=env)
        assert check.returncode == 1, check.stdout + check.stderr
        assert check.stdout.splitlines()[-1] == f"drift: {metrics}"
        repair = run_chimera("reconcile", env=env)
        assert repair.returncode == 0, repair.stdout + repair.stderr
        assert repair.stdout.splitlines()[-1] == f"repaired: {metrics}"
        again = run_chimera("reconcile", "--check", env=env)
        assert again.returncode == 0 and again.stdout.splitlines()[-1] == CLEAN
    finally:
        if written:
            await redis.delete(*written)
        await redis.aclose()
        await engine.dispose()
