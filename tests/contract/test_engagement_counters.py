"""Engagement counters follow the committed ENGAGEMENT events (ADR 0019), against real
PostgreSQL and Redis: a process killed anywhere in `record_engagement` leaves Redis counting
exactly the events that committed, once the relay has run; and `reconcile` finds, repairs
and then no longer finds drift, exactly, while increments keep coming.

The module uses a database of its own, so no background relay races what it asserts: the
tests run the relay's passes themselves. Tenants are fresh UUIDs, so their keys collide
with nothing else in the shared Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import psutil
import pytest
import pytest_asyncio
from redis.asyncio import Redis
from sqlalchemy import BigInteger, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.auth import Principal, Role
from app.commands.campaigns import create_campaign
from app.commands.engagement import APPLY_AFTER_COMMIT, record_engagement
from app.engagement.reconcile import CounterDrift, ReconcileError, describe, reconcile
from app.events.relay import publish_once
from app.stores.postgres.tables import campaign, outbox, tenant
from app.stores.redis import keys
from loaders.redis.counters import EngagementCounts
from tests.engines import migrated_engine
from tests.processes import ROOT

STALL_LOCK = 4242  # an advisory lock the test holds to stop a commit half-way
STALLED_COUNT = 7  # the increment whose commit waits for it


@pytest_asyncio.fixture(scope="module")
async def counters_engine(pg_server_url: str) -> AsyncIterator[AsyncEngine]:
    async with migrated_engine(pg_server_url, "chimera_counters") as engine:
        yield engine


@dataclass
class Stores:
    engine: AsyncEngine
    redis: Redis
    redis_url: str
    tenant_id: uuid.UUID

    @property
    def principal(self) -> Principal:
        return Principal(self.tenant_id, "counted", Role.EDITOR, "test")

    async def campaign(self, *, with_created_event: bool = True) -> uuid.UUID:
        """A campaign made by its command (with its CREATED event), or written directly."""
        if with_created_event:
            row = await create_campaign(
                self.engine,
                self.principal,
                name="Counted",
                goal="",
                budget=Decimal(0),
                starts_at=None,
                ends_at=None,
            )
            pk: uuid.UUID = row.id
            return pk
        pk = uuid.uuid4()
        async with self.engine.begin() as conn:
            await conn.execute(insert(campaign).values(id=pk, tenant_id=self.tenant_id, name="x"))
        return pk

    async def record(self, campaign_id: uuid.UUID, field: str, count: int) -> EngagementCounts:
        return await record_engagement(
            self.engine, self.redis, self.principal, campaign_id, field, count, timeout=5
        )

    async def counters(self, campaign_id: uuid.UUID) -> dict[str, int]:
        values: Any = await self.redis.hgetall(
            keys.campaign_engagement(self.tenant_id, campaign_id)
        )
        return {k.decode(): int(v) for k, v in values.items() if int(v)}

    async def committed(self, campaign_id: uuid.UUID) -> dict[str, int]:
        """What the committed ENGAGEMENT events of the campaign add up to, per field."""
        field = outbox.c.payload["field"].astext
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(field, func.sum(outbox.c.payload["count"].astext.cast(BigInteger)))
                .where(outbox.c.aggregate_id == campaign_id, outbox.c.event_type == "ENGAGEMENT")
                .group_by(field)
            )
            return {name: int(total) for name, total in rows}

    async def relay(self) -> None:
        """Run the relay's passes until it has nothing left to publish."""
        for _ in range(100):
            if not await publish_once(self.engine, self.redis):
                return
        raise AssertionError("the relay never ran out of events")


@pytest_asyncio.fixture
async def stores(
    counters_engine: AsyncEngine, redis: Redis, redis_url: str
) -> AsyncIterator[Stores]:
    pk = uuid.uuid4()
    async with counters_engine.begin() as conn:
        await conn.execute(insert(tenant).values(id=pk, slug=f"c-{pk.hex[:12]}", name="c"))
    yield Stores(counters_engine, redis, redis_url, pk)
    # Rows stay (the audit log is append-only; the database goes with the module).
    stale = [k async for k in redis.scan_iter(match=f"{keys.tenant_prefix(pk)}*")]
    if stale:
        await redis.delete(*stale)


# A process that records a burst of increments, as the app does, until it is killed.
BURST = """
import asyncio, sys, uuid
from app.auth import Principal, Role
from app.commands.engagement import APPLY_AFTER_COMMIT, record_engagement
from app.stores.postgres.engine import create_engine
from app.stores.redis.client import create_redis

async def main() -> None:
    database, redis_url, tenant_id, campaign_id, *counts = sys.argv[1:]
    engine = create_engine(database, timeout=60)
    redis = create_redis(redis_url, timeout=60)
    principal = Principal(uuid.UUID(tenant_id), "burst", Role.EDITOR, "burst")
    for count in counts:
        await record_engagement(
            engine, redis, principal, uuid.UUID(campaign_id), "shares", int(count), timeout=60
        )
        print(count, flush=True)

asyncio.run(main())
"""


def start_burst(stores: Stores, campaign_id: uuid.UUID, *counts: int) -> subprocess.Popen[str]:
    url = stores.engine.url.render_as_string(hide_password=False)
    args = [url, stores.redis_url, str(stores.tenant_id), str(campaign_id), *map(str, counts)]
    return subprocess.Popen(
        [sys.executable, "-c", BURST, *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def kill(process: subprocess.Popen[str]) -> None:
    """SIGKILL: nothing of the process runs after this, no handler, no finally."""
    process.send_signal(signal.SIGKILL)
    _, errors = process.communicate(timeout=10)
    assert process.returncode == -signal.SIGKILL, errors


async def until(condition: Any, what: str, timeout: float = 60) -> Any:
    """Poll ``condition()`` until it answers something truthy; fail after ``timeout``."""
    async with asyncio.timeout(timeout):
        while not (answer := await condition()):  # noqa: ASYNC110 - polls another process
            await asyncio.sleep(0.05)
    assert answer, what
    return answer


@contextlib.asynccontextmanager
async def commit_stalls_on_lock(engine: AsyncEngine) -> AsyncIterator[None]:
    """An increment of STALLED_COUNT waits, inside its COMMIT, for STALL_LOCK, which the test
    holds: the process then stands between its Redis call and the end of its commit."""
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "CREATE FUNCTION stall_commit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                f"IF NEW.payload->>'count' = '{STALLED_COUNT}' THEN "
                f"PERFORM pg_advisory_xact_lock({STALL_LOCK}); END IF; RETURN NULL; END $$"
            )
        )
        await conn.execute(
            text(
                "CREATE CONSTRAINT TRIGGER stall_commit AFTER INSERT ON outbox "
                "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION stall_commit()"
            )
        )
    try:
        yield
    finally:
        async with engine.begin() as conn:
            await conn.execute(text("DROP TRIGGER stall_commit ON outbox"))
            await conn.execute(text("DROP FUNCTION stall_commit()"))


async def stalled_backend(engine: AsyncEngine) -> int | None:
    async with engine.connect() as conn:
        pid: int | None = await conn.scalar(
            text(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
                "AND classid = 0 AND objid = :key"
            ),
            {"key": STALL_LOCK},
        )
        return pid


async def test_a_process_killed_between_its_redis_call_and_its_commit_counts_nothing(
    stores: Stores,
) -> None:
    """The defect: SIGKILL during a burst left Redis counting increments whose event never
    committed (285 shares counted, 281 in the outbox)."""
    campaign_id = await stores.campaign()
    async with commit_stalls_on_lock(stores.engine), stores.engine.connect() as holder:
        await holder.execute(text("SELECT pg_advisory_lock(:key)"), {"key": STALL_LOCK})
        burst = start_burst(stores, campaign_id, 1, 1, 1, STALLED_COUNT)
        try:
            # The fourth increment has made its Redis call and waits inside its COMMIT.
            backend = await until(lambda: stalled_backend(stores.engine), "a stalled commit")
            kill(burst)
            # The commit dies with the process that asked for it.
            await holder.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend})
        finally:
            if burst.poll() is None:
                kill(burst)
            await holder.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": STALL_LOCK})
    await stores.relay()
    assert await stores.committed(campaign_id) == {"shares": 3}
    assert await stores.counters(campaign_id) == {"shares": 3}
    [report] = await reconcile(
        stores.engine, stores.redis, repair=False, tenant_ids=[stores.tenant_id]
    )
    assert report.drifts == [] and report.events == 3


@pytest.mark.whole_redis_server
async def test_a_process_killed_between_its_commit_and_its_count_is_counted_once_by_the_relay(
    stores: Stores,
) -> None:
    campaign_id = await stores.campaign()
    await stores.record(campaign_id, "shares", 2)
    # Redis takes no writes (and runs no scripts) for now: the burst's increment commits,
    # then its count waits, and the process is killed there.
    await stores.redis.client_pause(30_000, all=False)  # writes and scripts wait
    try:
        burst = start_burst(stores, campaign_id, 5)
        try:
            await until(
                lambda: _committed_is(stores, campaign_id, {"shares": 7}), "the burst's commit"
            )
            connections = redis_addresses(burst, stores.redis_url)
            kill(burst)
            # A count the process had sent before it died waits in Redis, and would run at the
            # unpause had Redis not yet noticed the closed connection: wait until it has.
            await until(lambda: _gone(stores.redis, connections), "Redis dropping the burst")
        finally:
            if burst.poll() is None:
                kill(burst)
    finally:
        await stores.redis.client_unpause()
    assert await stores.counters(campaign_id) == {"shares": 2}, "counted by a dead process"
    await stores.relay()
    assert await stores.counters(campaign_id) == {"shares": 7}
    await stores.relay()
    assert await stores.counters(campaign_id) == {"shares": 7}


def redis_addresses(process: subprocess.Popen[str], redis_url: str) -> set[str]:
    """The process's connections to Redis, as Redis names them in CLIENT LIST (addr=)."""
    port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
    return {
        f"{c.laddr.ip}:{c.laddr.port}"
        for c in psutil.Process(process.pid).net_connections(kind="tcp")
        if c.raddr and c.raddr.port == port
    }


async def _gone(redis: Redis, addresses: set[str]) -> bool:
    clients: list[dict[str, Any]] = await redis.client_list()
    return not addresses & {client["addr"] for client in clients}


async def _committed_is(stores: Stores, campaign_id: uuid.UUID, totals: dict[str, int]) -> bool:
    return await stores.committed(campaign_id) == totals


@pytest.mark.whole_redis_server
async def test_when_redis_fails_right_after_the_commit_the_answer_still_counts_the_increment(
    stores: Stores,
) -> None:
    campaign_id = await stores.campaign()
    await stores.record(campaign_id, "likes", 2)
    await stores.redis.client_pause(30_000, all=False)  # writes and scripts wait
    try:
        # The count times out after the commit: the increment is recorded, so the mutation
        # succeeds (a retry would count it twice), with what Redis had plus this increment.
        answer = await record_engagement(
            stores.engine, stores.redis, stores.principal, campaign_id, "likes", 3, timeout=0.5
        )
    finally:
        await stores.redis.client_unpause()
    assert answer == EngagementCounts(likes=5)
    assert await stores.committed(campaign_id) == {"likes": 5}
    assert await stores.counters(campaign_id) == {"likes": 2}
    await stores.relay()
    assert await stores.counters(campaign_id) == {"likes": 5}


async def test_while_reconcile_fences_the_tenant_the_answer_counts_the_increment_and_so_does_the_relay_after(
    stores: Stores,
) -> None:
    campaign_id = await stores.campaign()
    await stores.record(campaign_id, "clicks", 1)
    fence = keys.engagement_fence(stores.tenant_id)
    await stores.redis.set(fence, "a reconcile's token")
    assert await stores.record(campaign_id, "clicks", 4) == EngagementCounts(clicks=5)
    assert await stores.counters(campaign_id) == {"clicks": 1}, "counted under the fence"
    await stores.relay()
    assert await stores.counters(campaign_id) == {"clicks": 1}, "counted under the fence"
    await stores.redis.delete(fence)
    await stores.relay()
    assert await stores.counters(campaign_id) == {"clicks": 5}


async def test_reconcile_reports_drift_repairs_it_and_then_reports_none(stores: Stores) -> None:
    redis, tenant_id = stores.redis, stores.tenant_id
    crashed, forgotten, legacy, waiting = [await stores.campaign() for _ in range(4)]
    unverifiable = await stores.campaign(with_created_event=False)
    # Counted by a process killed before its commit, in the versions before ADR 0019: Redis
    # holds 285 shares, the outbox 281.
    await stores.record(crashed, "shares", 281)
    await redis.hincrby(keys.campaign_engagement(tenant_id, crashed), "shares", 4)
    # Redis lost a counter (a restart without its append-only file).
    await stores.record(forgotten, "clicks", 6)
    await stores.record(forgotten, "likes", 2)
    await redis.hdel(keys.campaign_engagement(tenant_id, forgotten), "clicks")
    # A campaign with no CREATED event left (pruned): more in Redis than its events left.
    await stores.record(unverifiable, "likes", 1)
    await redis.hincrby(keys.campaign_engagement(tenant_id, unverifiable), "likes", 9)
    # An event counted before ADR 0019, still unpublished, and counted.
    async with stores.engine.begin() as conn:
        await conn.execute(
            insert(outbox).values(
                tenant_id=tenant_id,
                aggregate_type="campaign",
                aggregate_id=legacy,
                event_type="ENGAGEMENT",
                payload={"campaignId": str(legacy), "field": "comments", "count": 3},
            )
        )
    await redis.hincrby(keys.campaign_engagement(tenant_id, legacy), "comments", 3)
    # Committed, and the relay has not counted it yet: lag, not drift.
    async with stores.engine.begin() as conn:
        await conn.execute(
            insert(outbox).values(
                tenant_id=tenant_id,
                aggregate_type="campaign",
                aggregate_id=waiting,
                event_type="ENGAGEMENT",
                payload={
                    "campaignId": str(waiting),
                    "field": "impressions",
                    "count": 8,
                    APPLY_AFTER_COMMIT: True,
                },
            )
        )

    [found] = await reconcile(stores.engine, redis, repair=False, tenant_ids=[tenant_id])
    assert sorted(found.drifts, key=lambda d: d.delta) == [
        CounterDrift(forgotten, "clicks", redis=0, events=6, verifiable=True),
        CounterDrift(crashed, "shares", redis=285, events=281, verifiable=True),
        CounterDrift(unverifiable, "likes", redis=10, events=1, verifiable=False),
    ]
    assert (found.campaigns, found.events, found.pending, found.unverifiable) == (5, 6, 1, 1)
    assert not found.repaired
    assert await stores.counters(crashed) == {"shares": 285}, "--check changed a counter"
    assert (
        f"drift: tenant {tenant_id} campaign {forgotten} clicks: redis 0, events 6 (-6)"
        in describe([found])
    )

    [repaired] = await reconcile(stores.engine, redis, repair=True, tenant_ids=[tenant_id])
    assert repaired.repaired and repaired.drifts == found.drifts
    assert await stores.counters(crashed) == {"shares": 281}
    assert await stores.counters(forgotten) == {"clicks": 6, "likes": 2}
    assert await stores.counters(unverifiable) == {"likes": 10}, "cannot know: kept"
    assert await stores.counters(waiting) == {}, "the relay's to count, not the reconcile's"
    assert await redis.exists(keys.engagement_fence(tenant_id)) == 0

    [after] = await reconcile(stores.engine, redis, repair=False, tenant_ids=[tenant_id])
    assert [d for d in after.drifts if d.repairable] == []
    await stores.relay()
    assert await stores.counters(waiting) == {"impressions": 8}
    assert await stores.counters(legacy) == {"comments": 3}
    [settled] = await reconcile(stores.engine, redis, repair=False, tenant_ids=[tenant_id])
    assert [d.campaign_id for d in settled.drifts] == [unverifiable]
    assert settled.pending == 0
    assert describe([settled])[-1] == "counters match PostgreSQL (5 campaigns, 6 events)"


async def test_reconcile_during_a_burst_of_increments_finds_no_drift_and_changes_nothing(
    stores: Stores,
) -> None:
    """The fence makes the measure exact while requests and the relay keep counting: a
    reconcile that guessed would "repair" an increment in flight, and the counters would
    end off by it."""
    campaign_id = await stores.campaign()
    done = asyncio.Event()

    async def requests() -> None:
        try:
            for i in range(120):
                await stores.record(campaign_id, keys.ENGAGEMENT_FIELDS[i % 5], i % 3 + 1)
        finally:
            done.set()

    async def relay() -> None:
        while not done.is_set():
            await publish_once(stores.engine, stores.redis)
            await asyncio.sleep(0.005)

    reports = []

    async def reconciles() -> None:
        while not done.is_set():
            reports.extend(
                await reconcile(
                    stores.engine, stores.redis, repair=True, tenant_ids=[stores.tenant_id]
                )
            )

    async with asyncio.timeout(120):
        await asyncio.gather(requests(), relay(), reconciles())
    await stores.relay()
    assert len(reports) >= 3
    assert [d for r in reports for d in r.drifts] == []
    assert await stores.counters(campaign_id) == await stores.committed(campaign_id)


async def test_a_tenant_another_reconcile_is_measuring_is_refused_not_guessed(
    stores: Stores,
) -> None:
    fence = keys.engagement_fence(stores.tenant_id)
    await stores.redis.set(fence, "another run's token", ex=60)
    with pytest.raises(ReconcileError, match="another reconcile"):
        await reconcile(stores.engine, stores.redis, repair=True, tenant_ids=[stores.tenant_id])
    assert await stores.redis.get(fence) == b"another run's token", "lifted another's fence"
