"""The relay's contract, against real PostgreSQL and Redis: every committed campaign event
reaches its tenant's stream once, in outbox order, and every committed increment is counted
once in its campaign's counters, whatever fails in between.

The module relays a database of its own: the session app's relay publishes whatever is
unpublished in the session database and would race every assertion made here. Tenants are
fresh UUIDs, so their stream and marker keys collide with nothing else in the shared Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, cast

import pytest
import pytest_asyncio
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy import delete, func, insert, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.commands.engagement import APPLY_AFTER_COMMIT
from app.events.relay import (
    MARKER_TTL_SECONDS,
    PUBLISH_TENANT,
    RELAY_LOCK,
    Partition,
    oldest_unpublished_age,
    partitions,
    publish_once,
    run_forever,
)
from app.stores.postgres.tables import outbox, tenant
from app.stores.redis import keys
from app.stores.redis.client import create_redis
from app.stores.redis.scripts import APPLIED_TTL_SECONDS, APPLY_ENGAGEMENT
from tests.engines import migrated_engine
from tests.processes import closed_port_url
from tests.support import count_redis_round_trips


@pytest_asyncio.fixture(scope="module")
async def relay_engine(pg_server_url: str) -> AsyncIterator[AsyncEngine]:
    async with migrated_engine(pg_server_url, "chimera_relay") as engine:
        yield engine


@dataclass
class Outbox:
    """One test's tenants and events in the relay's database, cleared afterwards."""

    engine: AsyncEngine
    redis: Redis
    tenants: list[uuid.UUID] = field(default_factory=list)

    async def tenant(self) -> uuid.UUID:
        pk = uuid.uuid4()
        async with self.engine.begin() as conn:
            await conn.execute(insert(tenant).values(id=pk, slug=f"r-{pk.hex[:12]}", name="r"))
        self.tenants.append(pk)
        return pk

    async def emit(
        self,
        tenant_id: uuid.UUID,
        campaign_id: uuid.UUID,
        event_type: str = "UPDATED",
        *,
        aggregate_type: str = "campaign",
        age_seconds: float = 0,
        published: bool = False,
        payload: dict[str, Any] | None = None,
        traceparent: str | None = None,
    ) -> int:
        async with self.engine.begin() as conn:
            return await self.emit_in(
                conn,
                tenant_id,
                campaign_id,
                event_type,
                aggregate_type=aggregate_type,
                age_seconds=age_seconds,
                published=published,
                payload=payload,
                traceparent=traceparent,
            )

    async def increment(
        self, tenant_id: uuid.UUID, campaign_id: uuid.UUID, field: str, count: int
    ) -> int:
        """An ENGAGEMENT event as `record_engagement` commits it: for Redis to count."""
        payload = {"campaignId": str(campaign_id), "field": field, "count": count}
        return await self.emit(
            tenant_id, campaign_id, "ENGAGEMENT", payload={**payload, APPLY_AFTER_COMMIT: True}
        )

    async def counters(self, tenant_id: uuid.UUID, campaign_id: uuid.UUID) -> dict[str, int]:
        values: Any = await self.redis.hgetall(keys.campaign_engagement(tenant_id, campaign_id))
        return {k.decode(): int(v) for k, v in values.items()}

    @staticmethod
    async def emit_in(
        conn: AsyncConnection,
        tenant_id: uuid.UUID,
        campaign_id: uuid.UUID,
        event_type: str = "UPDATED",
        *,
        aggregate_type: str = "campaign",
        age_seconds: float = 0,
        published: bool = False,
        payload: dict[str, Any] | None = None,
        traceparent: str | None = None,
    ) -> int:
        event_id: int = (
            await conn.execute(
                insert(outbox)
                .values(
                    tenant_id=tenant_id,
                    aggregate_type=aggregate_type,
                    aggregate_id=campaign_id,
                    event_type=event_type,
                    payload=payload or {},
                    created_at=func.now() - text(f"interval '{age_seconds} seconds'"),
                    published_at=func.now() if published else None,
                    traceparent=traceparent,
                )
                .returning(outbox.c.id)
            )
        ).scalar_one()
        return event_id

    async def stream(self, tenant_id: uuid.UUID) -> list[tuple[int, str, str]]:
        """(event id, type, campaign) of every entry in the tenant's stream, in stream order."""
        entries: Any = await self.redis.xrange(keys.event_stream(tenant_id))
        return [
            (int(f[b"event"]), f[b"type"].decode(), f[b"campaign"].decode()) for _, f in entries
        ]

    async def unpublished(self) -> list[int]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(outbox.c.id).where(outbox.c.published_at.is_(None)).order_by(outbox.c.id)
            )
            return [r.id for r in rows]

    async def clear(self) -> None:
        async with self.engine.begin() as conn:
            events = list(
                await conn.execute(select(outbox.c.tenant_id, outbox.c.id, outbox.c.aggregate_id))
            )
            await conn.execute(delete(outbox))
            await conn.execute(delete(tenant))
        stale = [keys.published_marker(e.tenant_id, e.id) for e in events]
        stale += [keys.engagement_applied(e.tenant_id, e.id) for e in events]
        stale += [keys.campaign_engagement(e.tenant_id, e.aggregate_id) for e in events]
        stale += [
            k for pk in self.tenants for k in (keys.event_stream(pk), keys.engagement_fence(pk))
        ]
        if stale:
            await self.redis.delete(*stale)


@pytest_asyncio.fixture
async def box(relay_engine: AsyncEngine, redis: Redis) -> AsyncIterator[Outbox]:
    handle = Outbox(relay_engine, redis)
    await handle.clear()
    yield handle
    await handle.clear()


async def _drain(box: Outbox, *, batch_size: int = 200) -> None:
    for _ in range(1000):
        if not await publish_once(box.engine, box.redis, batch_size=batch_size):
            return
    raise AssertionError("the relay never ran out of events")


async def test_events_reach_their_tenants_stream_in_outbox_order_and_are_marked(
    box: Outbox,
) -> None:
    a, b = await box.tenant(), await box.tenant()
    c1, c2, c3 = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    plan = [
        (a, c1, "CREATED", "campaign"),
        (a, c2, "CREATED", "campaign"),
        (b, c3, "CREATED", "campaign"),
        (a, c1, "STATUS_CHANGED", "campaign"),
        (a, uuid.uuid4(), "CREATED", "agent"),  # not a stream event: only marked
        (a, c1, "MEDIA_DELETED", "campaign"),  # a campaign event subscriptions do not carry
        (a, c2, "ENGAGEMENT", "campaign"),
        (b, c3, "AGENT_ASSIGNED", "campaign"),
        (a, c1, "UPDATED", "campaign"),
    ]
    ids = [await box.emit(t, c, e, aggregate_type=kind) for t, c, e, kind in plan]

    # Small batches: order must hold across passes too.
    await _drain(box, batch_size=2)

    expected = {
        tenant_id: [
            (event_id, event, str(campaign))
            for event_id, (t, campaign, event, kind) in zip(ids, plan, strict=True)
            if t == tenant_id and kind == "campaign" and event != "MEDIA_DELETED"
        ]
        for tenant_id in (a, b)
    }
    assert await box.stream(a) == expected[a]
    assert await box.stream(b) == expected[b]
    assert [e for e, *_ in expected[a]] == sorted(e for e, *_ in expected[a])
    assert await box.unpublished() == []
    marker = keys.published_marker(a, ids[0])
    assert 0 < await box.redis.ttl(marker) <= MARKER_TTL_SECONDS
    assert await box.redis.exists(keys.published_marker(a, ids[4])) == 0


async def test_an_events_trace_context_rides_in_its_stream_entry_and_only_where_it_has_one(
    box: Outbox,
) -> None:
    a = await box.tenant()
    campaign_id = uuid.uuid4()
    traced = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    ids = [
        await box.emit(a, campaign_id, "UPDATED", traceparent=traced),
        await box.emit(a, campaign_id, "UPDATED"),
    ]
    payload = {"campaignId": str(campaign_id), "field": "clicks", "count": 2}
    ids.append(
        await box.emit(
            a,
            campaign_id,
            "ENGAGEMENT",
            payload={**payload, APPLY_AFTER_COMMIT: True},
            traceparent=traced,
        )
    )
    await _drain(box)
    entries: Any = await box.redis.xrange(keys.event_stream(a))
    assert [int(fields[b"event"]) for _id, fields in entries] == ids
    assert [fields.get(b"tp") for _id, fields in entries] == [
        traced.encode(),
        None,
        traced.encode(),
    ]
    assert await box.counters(a, campaign_id) == {"clicks": 2}


async def test_a_crash_between_publish_and_mark_publishes_each_event_once(
    box: Outbox,
) -> None:
    t, campaign = await box.tenant(), uuid.uuid4()
    before = [await box.emit(t, campaign, kind) for kind in ("CREATED", "UPDATED", "UPDATED")]
    # The pass publishes, then dies on the UPDATE that marks the rows: its transaction rolls
    # back, exactly as if the process had been killed before committing.
    async with box.engine.begin() as conn:
        await conn.execute(
            text(
                "CREATE FUNCTION relay_crash() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'relay crashed before marking'; END $$"
            )
        )
        await conn.execute(
            text(
                "CREATE TRIGGER relay_crash BEFORE UPDATE OF published_at ON outbox "
                "FOR EACH STATEMENT EXECUTE FUNCTION relay_crash()"
            )
        )
    try:
        with pytest.raises(DBAPIError, match="relay crashed before marking"):
            await publish_once(box.engine, box.redis)
    finally:
        async with box.engine.begin() as conn:
            await conn.execute(text("DROP TRIGGER relay_crash ON outbox"))
            await conn.execute(text("DROP FUNCTION relay_crash()"))
    assert [e for e, *_ in await box.stream(t)] == before, "the crashed pass published nothing"
    assert await box.unpublished() == before

    after = [await box.emit(t, campaign, "STATUS_CHANGED") for _ in range(2)]
    await _drain(box)
    assert await box.stream(t) == [
        (event_id, event, str(campaign))
        for event_id, event in zip(
            before + after,
            ["CREATED", "UPDATED", "UPDATED", "STATUS_CHANGED", "STATUS_CHANGED"],
            strict=True,
        )
    ]
    assert await box.unpublished() == []


class ReplyLostPipeline(Pipeline):
    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        await super().execute(raise_on_error)
        raise RedisConnectionError("connection reset before the reply")


class ReplyLost(Redis):
    """A real client whose batch reaches Redis and runs there, but whose reply is lost."""

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Pipeline:
        return ReplyLostPipeline(
            self.connection_pool, self.response_callbacks, transaction, shard_hint
        )


async def test_a_batch_whose_reply_is_lost_is_settled_by_the_next_pass_without_repeats(
    box: Outbox, redis_url: str
) -> None:
    t, campaign = await box.tenant(), uuid.uuid4()
    ids = [await box.emit(t, campaign) for _ in range(3)]
    ids += [await box.increment(t, campaign, "clicks", n) for n in (2, 5)]
    lossy = ReplyLost.from_url(redis_url, socket_timeout=5)
    try:
        assert await publish_once(box.engine, lossy) == 0
    finally:
        await lossy.aclose()
    assert await box.unpublished() == ids
    assert [e for e, *_ in await box.stream(t)] == ids
    assert await box.counters(t, campaign) == {"clicks": 7}

    await _drain(box)
    assert [e for e, *_ in await box.stream(t)] == ids
    assert await box.unpublished() == []
    assert await box.counters(t, campaign) == {"clicks": 7}


async def test_an_event_redis_refuses_holds_back_it_and_its_tenants_later_events_in_order(
    box: Outbox, redis: Redis
) -> None:
    healthy, broken, campaign = await box.tenant(), await box.tenant(), uuid.uuid4()
    # Something else wrote a plain string where the broken tenant's stream belongs.
    await redis.set(keys.event_stream(broken), "not a stream")
    ids = [
        await box.emit(healthy, campaign),
        await box.emit(healthy, campaign),
        await box.emit(broken, campaign),
        await box.emit(healthy, campaign),
        await box.emit(broken, campaign),
    ]
    # The broken tenant's events wait, in order; the healthy tenant's are not held back.
    assert await publish_once(box.engine, redis) == 3
    assert await box.unpublished() == [ids[2], ids[4]]
    assert [e for e, *_ in await box.stream(healthy)] == [ids[0], ids[1], ids[3]]
    assert not await redis.exists(keys.published_marker(broken, ids[2]))
    assert not await redis.exists(keys.published_marker(broken, ids[4]))

    await redis.delete(keys.event_stream(broken))
    await _drain(box)
    assert [e for e, *_ in await box.stream(healthy)] == [ids[0], ids[1], ids[3]]
    assert [e for e, *_ in await box.stream(broken)] == [ids[2], ids[4]]
    assert await box.unpublished() == []


async def test_with_redis_unreachable_nothing_is_marked_and_the_next_pass_publishes_all(
    box: Outbox,
) -> None:
    t, campaign = await box.tenant(), uuid.uuid4()
    ids = [await box.emit(t, campaign) for _ in range(3)]
    unreachable = create_redis(closed_port_url("redis"), timeout=1)
    try:
        assert await publish_once(box.engine, unreachable) == 0
    finally:
        await unreachable.aclose()
    assert await box.unpublished() == ids
    await _drain(box)
    assert [e for e, *_ in await box.stream(t)] == ids


async def test_while_another_relay_holds_the_lock_a_pass_publishes_nothing(box: Outbox) -> None:
    t, campaign = await box.tenant(), uuid.uuid4()
    ids = [await box.emit(t, campaign) for _ in range(3)]
    async with box.engine.connect() as other:
        await other.execute(text("SELECT pg_advisory_lock(:key)"), {"key": RELAY_LOCK})
        try:
            assert await publish_once(box.engine, box.redis) == 0
            assert await box.stream(t) == []
            assert await box.unpublished() == ids
        finally:
            await other.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": RELAY_LOCK})
    assert await publish_once(box.engine, box.redis) == 3
    assert [e for e, *_ in await box.stream(t)] == ids


async def test_an_event_committed_after_a_higher_id_was_published_is_published_late(
    box: Outbox,
) -> None:
    """Ids are drawn at insert, not at commit: the relay must not skip a late commit (a
    high-water mark would), and it can only publish it after the ids already out."""
    t, campaign = await box.tenant(), uuid.uuid4()
    async with box.engine.connect() as slow:
        transaction = await slow.begin()
        late = await Outbox.emit_in(slow, t, campaign, "ENGAGEMENT")
        early = await box.emit(t, campaign, "UPDATED")
        assert late < early
        assert await publish_once(box.engine, box.redis) == 1
        await transaction.commit()
    await _drain(box)
    assert await box.stream(t) == [
        (early, "UPDATED", str(campaign)),
        (late, "ENGAGEMENT", str(campaign)),
    ]
    assert await box.unpublished() == []


async def test_oldest_unpublished_age_is_that_of_the_oldest_waiting_event(box: Outbox) -> None:
    assert await oldest_unpublished_age(box.engine) is None
    t, campaign = await box.tenant(), uuid.uuid4()
    await box.emit(t, campaign, age_seconds=3600, published=True)  # old but out: ignored
    await box.emit(t, campaign, age_seconds=90)
    await box.emit(t, campaign, age_seconds=10)
    age = await oldest_unpublished_age(box.engine)
    assert age is not None
    assert 90 <= age < 90 + 30
    await _drain(box)
    assert await oldest_unpublished_age(box.engine) is None


async def test_concurrent_relays_publish_each_event_once_in_order(box: Outbox) -> None:
    t, campaign = await box.tenant(), uuid.uuid4()
    ids = [await box.emit(t, campaign) for _ in range(120)]

    async def relay() -> None:
        while await box.unpublished():
            await publish_once(box.engine, box.redis, batch_size=7)
            await asyncio.sleep(0.001)

    async with asyncio.timeout(60):
        await asyncio.gather(*(relay() for _ in range(4)))
    assert [e for e, *_ in await box.stream(t)] == ids
    assert await box.unpublished() == []


async def test_a_commit_wakes_the_relay_without_waiting_for_its_poll(box: Outbox) -> None:
    t, campaign = await box.tenant(), uuid.uuid4()
    # Polling alone would take a minute to notice: only the commit notification can be quick.
    relay = asyncio.create_task(
        run_forever(box.engine, box.redis, idle_seconds=60, listening_idle_seconds=60)
    )
    try:
        await asyncio.sleep(0.5)  # listening, and idle
        event_id = await box.emit(t, campaign)
        async with asyncio.timeout(5):
            while not await box.stream(t):  # noqa: ASYNC110 - polls the stream
                await asyncio.sleep(0.02)
    finally:
        relay.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await relay
    assert [e for e, *_ in await box.stream(t)] == [event_id]


@contextlib.asynccontextmanager
async def _crash_before_marking(engine: AsyncEngine) -> AsyncIterator[None]:
    """Every pass publishes, then dies on the UPDATE that marks its rows: its transaction
    rolls back, exactly as if the process had been killed before committing."""
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "CREATE FUNCTION relay_crash() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'relay crashed before marking'; END $$"
            )
        )
        await conn.execute(
            text(
                "CREATE TRIGGER relay_crash BEFORE UPDATE OF published_at ON outbox "
                "FOR EACH STATEMENT EXECUTE FUNCTION relay_crash()"
            )
        )
    try:
        yield
    finally:
        async with engine.begin() as conn:
            await conn.execute(text("DROP TRIGGER relay_crash ON outbox"))
            await conn.execute(text("DROP FUNCTION relay_crash()"))


async def test_each_committed_increment_is_counted_once_even_when_the_relay_crashes_before_marking(
    box: Outbox,
) -> None:
    t, campaign = await box.tenant(), uuid.uuid4()
    ids = [await box.increment(t, campaign, field, n) for field, n in [("likes", 2), ("shares", 3)]]
    async with _crash_before_marking(box.engine):
        for _ in range(2):  # and crashes again: still counted once
            with pytest.raises(DBAPIError, match="relay crashed before marking"):
                await publish_once(box.engine, box.redis)
    assert await box.counters(t, campaign) == {"likes": 2, "shares": 3}
    assert await box.unpublished() == ids

    ids.append(await box.increment(t, campaign, "shares", 4))
    await _drain(box)
    assert await box.counters(t, campaign) == {"likes": 2, "shares": 7}
    assert [e for e, *_ in await box.stream(t)] == ids
    marker = keys.engagement_applied(t, ids[0])
    assert 0 < await box.redis.ttl(marker) <= APPLIED_TTL_SECONDS


async def test_an_increment_the_request_counted_first_is_published_but_not_counted_again(
    box: Outbox,
) -> None:
    t, campaign = await box.tenant(), uuid.uuid4()
    event_id = await box.increment(t, campaign, "clicks", 3)
    # The request's own apply, right after its commit, won the race with the relay.
    state, _ = await APPLY_ENGAGEMENT(
        box.redis,
        [
            keys.campaign_engagement(t, campaign),
            keys.engagement_applied(t, event_id),
            keys.engagement_fence(t),
        ],
        [APPLIED_TTL_SECONDS, "clicks", 3, *keys.ENGAGEMENT_FIELDS],
    )
    assert state == 1
    await _drain(box)
    assert await box.counters(t, campaign) == {"clicks": 3}
    assert [e for e, *_ in await box.stream(t)] == [event_id]


async def test_increments_counted_before_their_commit_by_earlier_versions_are_not_counted_again(
    box: Outbox,
) -> None:
    t, campaign = await box.tenant(), uuid.uuid4()
    # Written before ADR 0019: Redis counted it before the commit; no applyAfterCommit.
    payload = {"campaignId": str(campaign), "field": "clicks", "count": 9}
    legacy = await box.emit(t, campaign, "ENGAGEMENT", payload=payload)
    await _drain(box)
    assert await box.counters(t, campaign) == {}
    assert [e for e, *_ in await box.stream(t)] == [legacy]


async def test_while_reconcile_fences_a_tenant_its_increments_wait_and_other_tenants_flow(
    box: Outbox,
) -> None:
    fenced, other, campaign = await box.tenant(), await box.tenant(), uuid.uuid4()
    ids = [
        await box.emit(fenced, campaign, "UPDATED"),
        await box.increment(fenced, campaign, "likes", 1),
        await box.emit(fenced, campaign, "UPDATED"),
        await box.increment(other, campaign, "likes", 5),
    ]
    await box.redis.set(keys.engagement_fence(fenced), "a reconcile's token")
    assert await publish_once(box.engine, box.redis) == 2
    assert await box.unpublished() == ids[1:3]
    assert [e for e, *_ in await box.stream(fenced)] == ids[:1]
    assert await box.counters(fenced, campaign) == {}
    assert await box.counters(other, campaign) == {"likes": 5}

    await box.redis.delete(keys.engagement_fence(fenced))
    await _drain(box)
    assert [e for e, *_ in await box.stream(fenced)] == ids[:3]
    assert await box.counters(fenced, campaign) == {"likes": 1}


async def test_an_increment_redis_cannot_count_holds_back_its_tenant_until_it_can(
    box: Outbox, redis: Redis
) -> None:
    t, campaign = await box.tenant(), uuid.uuid4()
    await redis.set(keys.campaign_engagement(t, campaign), "not a hash")
    ids = [await box.increment(t, campaign, "clicks", 2), await box.emit(t, campaign)]
    assert await publish_once(box.engine, redis) == 0
    assert await box.unpublished() == ids
    assert await box.stream(t) == []
    assert not await redis.exists(keys.engagement_applied(t, ids[0]))

    await redis.delete(keys.campaign_engagement(t, campaign))
    await _drain(box)
    assert await box.counters(t, campaign) == {"clicks": 2}
    assert [e for e, *_ in await box.stream(t)] == ids


class Recording(Redis):
    """A real client that remembers the commands of every pipeline it runs."""

    sent: list[tuple[Any, ...]]

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Pipeline:
        client = self

        class RecordingPipeline(Pipeline):
            async def execute(self, raise_on_error: bool = True) -> list[Any]:
                client.sent += [args for args, _ in self.command_stack]
                return await super().execute(raise_on_error)

        return RecordingPipeline(
            self.connection_pool, self.response_callbacks, transaction, shard_hint
        )


async def test_a_pass_is_one_round_trip_and_no_script_call_names_two_tenants_keys(
    box: Outbox, redis_url: str
) -> None:
    tenants = [await box.tenant() for _ in range(3)]
    campaign = uuid.uuid4()
    for i in range(12):
        t = tenants[i % 3]
        await (box.increment(t, campaign, "clicks", 1) if i % 2 else box.emit(t, campaign))
    recording = cast(Recording, Recording.from_url(redis_url, socket_timeout=5))
    recording.sent = []
    try:
        await recording.script_load(PUBLISH_TENANT.source)  # connected, and the script known
        with count_redis_round_trips() as trips:
            assert await publish_once(box.engine, recording) == 12
    finally:
        await recording.aclose()
    assert trips.count == 1
    assert len(recording.sent) == 3  # one script call per tenant
    for command, _sha, numkeys, *rest in recording.sent:
        assert command == "EVALSHA"
        prefixes = {k.split(":", 3)[2] for k in rest[: int(numkeys)]}
        assert len(prefixes) == 1, prefixes
    for t in tenants:
        assert await box.counters(t, campaign) == {"clicks": 2}


@pytest.mark.whole_redis_server
async def test_after_redis_forgets_its_scripts_the_next_pass_still_publishes_and_counts(
    box: Outbox,
) -> None:
    t, campaign = await box.tenant(), uuid.uuid4()
    ids = [await box.emit(t, campaign), await box.increment(t, campaign, "comments", 4)]
    await box.redis.script_flush()  # as after a restart
    assert await publish_once(box.engine, box.redis) == 2
    assert [e for e, *_ in await box.stream(t)] == ids
    assert await box.counters(t, campaign) == {"comments": 4}


async def test_partitions_split_the_tenants_between_them_and_cover_them_all(box: Outbox) -> None:
    tenants = [await box.tenant() for _ in range(12)]
    campaign = uuid.uuid4()
    ids = {t: [await box.emit(t, campaign) for _ in range(3)] for t in tenants}
    published_by: dict[int, int] = {}
    for partition in partitions(4):
        published_by[partition.index] = await publish_once(
            box.engine, box.redis, partition=partition
        )
    assert sum(published_by.values()) == 36 and await box.unpublished() == []
    assert sum(1 for n in published_by.values() if n) > 1, "a hash that sends all to one"
    for t in tenants:
        assert [e for e, *_ in await box.stream(t)] == ids[t]  # each tenant in order


async def test_a_partition_held_by_another_relay_holds_back_only_its_own_tenants(
    box: Outbox,
) -> None:
    # 20 tenants: all in one of the two partitions by chance is two in a million.
    tenants = [await box.tenant() for _ in range(20)]
    for t in tenants:
        await box.emit(t, uuid.uuid4())
    held, free = Partition(0, 2), Partition(1, 2)
    async with box.engine.connect() as other:
        await other.execute(
            text("SELECT pg_advisory_lock(:key, :index)"), {"key": RELAY_LOCK, "index": 0}
        )
        try:
            assert await publish_once(box.engine, box.redis, partition=held) == 0
            published = await publish_once(box.engine, box.redis, partition=free)
            assert 0 < published < 20 and len(await box.unpublished()) == 20 - published
        finally:
            await other.execute(
                text("SELECT pg_advisory_unlock(:key, :index)"), {"key": RELAY_LOCK, "index": 0}
            )
    assert await publish_once(box.engine, box.redis, partition=held) == 20 - published
    assert await box.unpublished() == []


async def test_relays_of_many_partitions_in_many_processes_publish_each_event_once_in_order(
    box: Outbox,
) -> None:
    """Two relays (as two workers would), each running every partition's loop: every event
    once, each tenant's in order, whichever relay took which partition's batches."""
    tenants = [await box.tenant() for _ in range(6)]
    campaign = uuid.uuid4()
    ids = {t: [await box.emit(t, campaign) for _ in range(25)] for t in tenants}
    relays = [
        asyncio.create_task(run_forever(box.engine, box.redis, partition_count=3)) for _ in range(2)
    ]
    try:
        async with asyncio.timeout(60):
            while await box.unpublished():  # noqa: ASYNC110 - the relays' work is in the database
                await asyncio.sleep(0.05)
    finally:
        for task in relays:
            task.cancel()
        await asyncio.gather(*relays, return_exceptions=True)
    for t in tenants:
        assert [e for e, *_ in await box.stream(t)] == ids[t]
