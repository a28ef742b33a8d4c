"""The dashboard benchmark's engines and data: one embedded PostgreSQL, one Redis, one dataset.

Every setup the bench compares reads the same rows from the same server, so the engines are
the bench's own (never the machine's PostgreSQL 15 or Redis 7, which other work shares) and
the data is deterministic: a fixed seed makes the same tenant, campaigns, agents, media,
counters and vectors on every machine. Seeding takes seconds (COPY, one pipeline, one
batched upsert) and is skipped when a marker says this exact dataset is already there, so
reruns start measuring at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
from redis.asyncio import Redis
from unthrottled import BUCKET

from app import migrations
from app.indexing.documents import digest
from app.seed import seed_running_tasks
from app.stores.objects.keys import media_key
from app.stores.postgres.embedded import (
    EmbeddedPostgres,
    ensure_database,
    start_embedded_postgres,
)
from app.stores.postgres.engine import create_engine
from app.stores.redis import keys
from app.stores.redis.embedded import EmbeddedRedis, start_embedded_redis
from app.stores.vectors.pgvector import open_pgvector
from app.stores.vectors.port import DIMENSIONS, VectorKind, VectorRecord

log = logging.getLogger("bench.dashboard")

# Bump when the rows the seeder writes change shape: a marker of another version reseeds.
SEED_VERSION = 3
NAMESPACE = uuid.UUID("0b5e0c1d-6a0e-4c35-9d7e-3f1f5c0d2a11")
EPOCH = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
# The day whose hourly metrics query E reads (bench/dashboard_queries.py).
METRIC_DAY = datetime(2025, 3, 3, tzinfo=UTC)
SPENDS_PER_CAMPAIGN = 3
HISTORY_PER_CAMPAIGN = 6
STATS_DATABASE = "postgres"  # where pg_stat_statements is read from, so reading it is not counted

VOCABULARY = (
    "summer launch sneaker eco fabric brand loyalty reach video short clip creator fitness "
    "coffee subscription webinar security cloud retail holiday gift bundle discount story "
    "audience growth install app mobile premium organic local community review ambassador "
    "podcast newsletter spring winter outdoor travel kids family pet health snack drink "
    "festival music gaming stream esports fashion beauty skincare vegan protein running"
)
WORDS = VOCABULARY.split()
CAMPAIGN_STATUSES = ("DRAFT", "ACTIVE", "ACTIVE", "ACTIVE", "PAUSED", "COMPLETED", "ARCHIVED")
AGENT_STATUSES = ("ACTIVE",) * 16 + ("PAUSED",) * 3 + ("RETIRED",)
MEDIA_TYPES = (
    ("IMAGE", "image/jpeg", "jpg"),
    ("IMAGE", "image/png", "png"),
    ("IMAGE", "image/webp", "webp"),
    ("VIDEO", "video/mp4", "mp4"),
)
TOPICS = 24  # campaign vectors cluster around this many directions, so `similar` means something


@dataclass(frozen=True)
class Dataset:
    """What to seed. The issue's dataset is the default; ``--smoke`` uses a smaller one."""

    name: str
    campaigns: int = 1000
    agents: int = 200
    agents_per_campaign: int = 5
    media_per_campaign: int = 4
    seed: int = 20250106

    @property
    def database(self) -> str:
        return f"bench_{self.name}"

    @property
    def vector_database(self) -> str:
        """The vector index in a database of its own on the same server (``PGVECTOR_URL``):
        same engine, but pg_stat_statements then tells its statements apart exactly."""
        return f"bench_{self.name}_vectors"

    @property
    def tenant_id(self) -> uuid.UUID:
        return self.uid("tenant")

    @property
    def tenant_slug(self) -> str:
        return f"bench-{self.name}"

    def uid(self, *parts: object) -> uuid.UUID:
        return uuid.uuid5(NAMESPACE, ":".join([self.name, str(self.seed), *map(str, parts)]))

    @property
    def marker(self) -> str:
        """Changes whenever any input of the seed does: a stale marker means reseed."""
        payload = json.dumps({"v": SEED_VERSION, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


FULL = Dataset(name="full")
# More campaigns than the largest page counted (100), so that every page size leaves some of
# the tenant's campaigns (and some similar ones) off the page, as the full dataset does.
SMOKE = Dataset(name="smoke", campaigns=150, agents=50)


@dataclass
class Engines:
    """The bench's own PostgreSQL and Redis, and how to reach them."""

    postgres: EmbeddedPostgres
    redis: EmbeddedRedis

    @property
    def socket_dir(self) -> str:
        return self.postgres.socket_dir

    @property
    def postmaster_pid(self) -> int:
        pid = self.postgres.server.get_pid()
        assert pid is not None, "the embedded PostgreSQL is not running"
        return int(pid)

    def sqlalchemy_url(self, database: str) -> str:
        return self.postgres.url(database)

    def libpq_url(self, database: str) -> str:
        """For node-postgres (PostGraphile): ``host`` in the query is the socket directory."""
        return f"postgres://postgres@/{database}?host={self.socket_dir}"

    @property
    def redis_url(self) -> str:
        return self.redis.url

    def stop(self) -> None:
        try:
            self.redis.stop()
        finally:
            self.postgres.stop()


def start_engines(data_dir: Path) -> Engines:
    """Start (or attach to) the bench's PostgreSQL, with pg_stat_statements preloaded, and Redis.

    pg_stat_statements counts every statement each server runs, exactly, whoever sends it;
    it needs ``shared_preload_libraries``, which only a restart applies. The setting is
    written once into this data directory's ``postgresql.auto.conf`` (ALTER SYSTEM), so the
    restart happens on first use only.
    """
    postgres = start_embedded_postgres(data_dir / "postgres")
    try:
        if not asyncio.run(_has_stat_statements(postgres.socket_dir)):
            log.info("configuring pg_stat_statements (one restart, first run only)")
            asyncio.run(_preload_stat_statements(postgres.socket_dir))
            postgres.stop()
            postgres = start_embedded_postgres(data_dir / "postgres")
            if not asyncio.run(_has_stat_statements(postgres.socket_dir)):
                raise RuntimeError("pg_stat_statements did not load after the restart")
        asyncio.run(_create_stat_statements(postgres.socket_dir))
        redis = start_embedded_redis(data_dir / "redis")
    except BaseException:
        postgres.stop()
        raise
    return Engines(postgres=postgres, redis=redis)


async def _connect(socket_dir: str, database: str = STATS_DATABASE) -> asyncpg.Connection:
    return await asyncpg.connect(host=socket_dir, user="postgres", database=database)


async def _has_stat_statements(socket_dir: str) -> bool:
    conn = await _connect(socket_dir)
    try:
        libraries = await conn.fetchval("SHOW shared_preload_libraries")
        return "pg_stat_statements" in str(libraries)
    finally:
        await conn.close()


async def _preload_stat_statements(socket_dir: str) -> None:
    conn = await _connect(socket_dir)
    try:
        await conn.execute("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
        # Unnormalised counts per statement are what we need; utility statements (BEGIN,
        # COMMIT, ROLLBACK) are round trips too and are counted, and reported apart.
        await conn.execute("ALTER SYSTEM SET pg_stat_statements.track_utility = on")
        await conn.execute("ALTER SYSTEM SET pg_stat_statements.max = 10000")
    finally:
        await conn.close()


async def _create_stat_statements(socket_dir: str) -> None:
    conn = await _connect(socket_dir)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    finally:
        await conn.close()


async def server_version(socket_dir: str) -> str:
    conn = await _connect(socket_dir)
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


# --------------------------------------------------------------------------------------------
# Seeding


@dataclass
class SeedReport:
    database: str
    tenant_id: str
    reused: bool
    seconds: float
    rows: dict[str, int]


async def seed(engines: Engines, dataset: Dataset) -> SeedReport:
    """Migrate the dataset's database to head and fill it, unless its marker says it is done.

    Migrations run every time (cheap at head), so a new migration from a colleague is applied
    before anything is measured; a marker of another dataset or seed version reseeds from
    scratch. Redis is checked on its own: its append-only file may be gone while PostgreSQL's
    data is not.
    """
    loop = asyncio.get_running_loop()
    started = loop.time()
    await ensure_database(engines.socket_dir, dataset.database)
    await ensure_database(engines.socket_dir, dataset.vector_database)
    engine = create_engine(engines.sqlalchemy_url(dataset.database), timeout=60)
    try:
        await migrations.upgrade(engine)
    finally:
        await engine.dispose()
    # The adapter creates its own table on open, as it does when the app starts.
    async with open_pgvector(engines.sqlalchemy_url(dataset.vector_database), timeout=60):
        pass
    conn = await _connect(engines.socket_dir, dataset.database)
    redis = Redis.from_url(engines.redis_url)
    try:
        await conn.execute("CREATE SCHEMA IF NOT EXISTS bench")
        await conn.execute("CREATE TABLE IF NOT EXISTS bench.seed (marker text NOT NULL)")
        pg_done = await conn.fetchval("SELECT marker FROM bench.seed") == dataset.marker
        redis_key = f"bench:seeded:{dataset.database}"
        redis_done = (await redis.get(redis_key)) == dataset.marker.encode()
        data = generate(dataset)
        if not pg_done:
            log.info("seeding %s (%d campaigns)", dataset.database, dataset.campaigns)
            await _seed_postgres(conn, dataset, data)
        # Buckets that never refuse (bench/unthrottled.py), set on every run, seeded or reused.
        await conn.execute(
            "UPDATE tenant SET rate_capacity = $2, rate_per_second = $3,"
            " client_rate_capacity = $2, client_rate_per_second = $3 WHERE id = $1",
            dataset.tenant_id,
            BUCKET,
            float(BUCKET),
        )
        if not redis_done or not pg_done:
            await _seed_redis(redis, dataset, data)
            await redis.set(redis_key, dataset.marker)
        if not pg_done:
            await _seed_vectors(engines, dataset, data)
            await conn.execute("ANALYZE")
            await conn.execute("DELETE FROM bench.seed")
            await conn.execute("INSERT INTO bench.seed VALUES ($1)", dataset.marker)
        rows = {
            table: int(await conn.fetchval(f"SELECT count(*) FROM {table}"))
            for table in ("campaign", "agent", "campaign_agent", "media_asset")
        }
    finally:
        await conn.close()
        await redis.aclose()
    vectors = await _connect(engines.socket_dir, dataset.vector_database)
    try:
        rows["vector_item"] = int(await vectors.fetchval("SELECT count(*) FROM vector_item"))
    finally:
        await vectors.close()
    return SeedReport(
        database=dataset.database,
        tenant_id=str(dataset.tenant_id),
        reused=pg_done and redis_done,
        seconds=loop.time() - started,
        rows=rows,
    )


@dataclass
class Generated:
    tenant: tuple[Any, ...]
    agents: list[tuple[Any, ...]]
    campaigns: list[tuple[Any, ...]]
    memberships: list[tuple[Any, ...]]
    media: list[tuple[Any, ...]]
    engagement: dict[uuid.UUID, dict[str, int]]
    active_tasks: dict[uuid.UUID, int]
    vectors: list[tuple[uuid.UUID, str, list[float]]]
    ledger: list[tuple[Any, ...]]
    metrics: list[tuple[Any, ...]]
    audit: list[tuple[Any, ...]]


def _words(rng: random.Random, low: int, high: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(low, high)))


def _moment(base: datetime, rng: random.Random, minutes: float) -> datetime:
    """``base`` plus ``minutes``, with microseconds, as PostgreSQL keeps them."""
    return base + timedelta(minutes=minutes, microseconds=rng.randrange(1, 1_000_000))


def generate(dataset: Dataset) -> Generated:
    """Every row and counter of the dataset, from its seed alone."""
    rng = random.Random(dataset.seed)
    tid = dataset.tenant_id
    tenant_row = (tid, dataset.tenant_slug, f"Bench tenant ({dataset.name})", EPOCH)

    agents = []
    for i in range(dataset.agents):
        created = _moment(EPOCH, rng, i * 7)
        agents.append(
            (
                dataset.uid("agent", i),
                tid,
                f"Agent {i:03d} {rng.choice(WORDS).title()}",
                f"{_words(rng, 6, 14)}.",
                rng.choice(AGENT_STATUSES),
                created,
                created + timedelta(hours=rng.randint(0, 72)),
            )
        )

    campaigns, memberships, media = [], [], []
    ledger, metrics, audit = [], [], []
    engagement: dict[uuid.UUID, dict[str, int]] = {}
    for i in range(dataset.campaigns):
        cid = dataset.uid("campaign", i)
        created = _moment(EPOCH + timedelta(days=2), rng, i * 11)
        starts: datetime | None = None
        ends: datetime | None = None
        if rng.random() < 0.85:
            starts = created + timedelta(days=rng.randint(0, 30))
            if rng.random() < 0.8:
                ends = starts + timedelta(days=rng.randint(7, 120), seconds=rng.randint(1, 86399))
        budget = Decimal(rng.randrange(10_000, 100_000_000)) / 100
        name = f"Campaign {i:04d}: {_words(rng, 2, 4).title()}"
        goal = f"{_words(rng, 8, 24).capitalize()}."
        spends = [
            (budget * Decimal(rng.randint(1, 10)) / 100).quantize(Decimal("0.01"))
            for _ in range(SPENDS_PER_CAMPAIGN)
        ]
        members = rng.sample(range(dataset.agents), k=dataset.agents_per_campaign)
        for k, amount in enumerate(spends):
            ledger.append(
                (
                    dataset.uid("transaction", i, k),
                    tid,
                    cid,
                    agents[members[k % len(members)]][0],
                    amount,
                    "USD",
                    "SPEND",
                    f"Week {k + 1} ad spend",
                    f"seed-{i}-{k}",
                    _moment(created, rng, 600 + k * 1440),
                    "bench",
                )
            )
        for hour in range(24):
            clicks = rng.randint(0, 40)
            metrics.append(
                (
                    tid,
                    cid,
                    METRIC_DAY + timedelta(hours=hour, minutes=rng.randint(0, 59)),
                    clicks * rng.randint(20, 60),
                    clicks,
                    clicks // 3,
                    clicks // 9,
                    clicks // 12,
                    Decimal(rng.randint(0, 5000)) / 100,
                )
            )
        for k in range(HISTORY_PER_CAMPAIGN):
            audit.append(
                (
                    tid,
                    "bench",
                    "campaign.update",
                    "campaign",
                    cid,
                    "campaign",
                    cid,
                    json.dumps({"name": f"{name} v{k}", "budget": str(budget)}),
                    json.dumps({"name": f"{name} v{k + 1}", "budget": str(budget)}),
                    _moment(created, rng, 120 + k * 60),
                )
            )
        campaigns.append(
            (
                cid,
                tid,
                name,
                goal,
                rng.choice(CAMPAIGN_STATUSES),
                budget,
                starts,
                ends,
                created,
                created + timedelta(hours=rng.randint(0, 500), microseconds=rng.randrange(1, 999)),
                sum(spends, Decimal(0)),
            )
        )
        for n, agent_index in enumerate(members):
            memberships.append(
                (tid, cid, agents[agent_index][0], _moment(created, rng, 30 + n * 13))
            )
        for k in range(dataset.media_per_campaign):
            mid = dataset.uid("media", i, k)
            kind, content_type, ext = rng.choice(MEDIA_TYPES)
            filename = f"{rng.choice(WORDS)}-{i:04d}-{k}.{ext}"
            media.append(
                (
                    mid,
                    tid,
                    cid,
                    media_key(tid, mid, filename),
                    kind,
                    content_type,
                    filename,
                    rng.randrange(10_000, 50_000_000),
                    hashlib.md5(f"{mid}".encode(), usedforsecurity=False).hexdigest(),
                    _words(rng, 3, 9),
                    "READY",
                    _moment(created, rng, 60 + k * 17),
                    _moment(created, rng, 60 + k * 17 + 5),
                )
            )
        impressions = rng.randrange(1_000, 2_000_000)
        engagement[cid] = {
            "impressions": impressions,
            "clicks": impressions // rng.randint(20, 200),
            "likes": impressions // rng.randint(50, 400),
            "shares": impressions // rng.randint(300, 3000),
            "comments": impressions // rng.randint(500, 5000),
        }
    active_tasks = {row[0]: rng.randint(0, 12) for row in agents}

    # Synthetic unit vectors around a few topic directions: deterministic, no model needed,
    # and close enough to each other within a topic for `similar` to rank something.
    vrng = np.random.default_rng(dataset.seed)
    centroids = vrng.normal(size=(TOPICS, DIMENSIONS))
    topics = vrng.integers(0, TOPICS, size=len(campaigns))
    raw = centroids[topics] + 0.6 * vrng.normal(size=(len(campaigns), DIMENSIONS))
    raw /= np.linalg.norm(raw, axis=1, keepdims=True)
    vectors = [
        (row[0], f"{row[2]}. {row[3]}".strip(), [float(x) for x in raw[n]])
        for n, row in enumerate(campaigns)
    ]
    return Generated(
        tenant=tenant_row,
        agents=agents,
        campaigns=campaigns,
        memberships=memberships,
        media=media,
        engagement=engagement,
        active_tasks=active_tasks,
        vectors=vectors,
        ledger=ledger,
        metrics=metrics,
        audit=audit,
    )


async def _copy(
    conn: asyncpg.Connection, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]
) -> None:
    await conn.copy_records_to_table(table, records=rows, columns=list(columns))


async def _seed_postgres(conn: asyncpg.Connection, dataset: Dataset, data: Generated) -> None:
    """Replace the tenant's rows with the generated ones, in one transaction, by COPY."""
    async with conn.transaction():
        # Cascades to agents, campaigns, memberships and media (and whatever else hangs off
        # the tenant); the vectors are in their own database, replaced in _seed_vectors.
        # The ledger refuses to lose a campaign's transactions, and the audit log any entry,
        # except to its retention job's setting (migration 0006): both go first, deliberately.
        await conn.execute("SELECT set_config('chimera.audit_prune_before', 'infinity', true)")
        await conn.execute("DELETE FROM ledger_transaction WHERE tenant_id = $1", dataset.tenant_id)
        await conn.execute("DELETE FROM tenant WHERE id = $1", dataset.tenant_id)
        await conn.execute("DELETE FROM bench.seed")
        await _copy(conn, "tenant", ("id", "slug", "name", "created_at"), [data.tenant])
        await _copy(
            conn,
            "agent",
            ("id", "tenant_id", "name", "persona", "status", "created_at", "updated_at"),
            data.agents,
        )
        await _copy(
            conn,
            "campaign",
            (
                "id",
                "tenant_id",
                "name",
                "goal",
                "status",
                "budget",
                "starts_at",
                "ends_at",
                "created_at",
                "updated_at",
                "spent",
            ),
            data.campaigns,
        )
        await _copy(
            conn,
            "campaign_agent",
            ("tenant_id", "campaign_id", "agent_id", "assigned_at"),
            data.memberships,
        )
        await _copy(
            conn,
            "media_asset",
            (
                "id",
                "tenant_id",
                "campaign_id",
                "object_key",
                "kind",
                "content_type",
                "filename",
                "size_bytes",
                "checksum",
                "caption",
                "status",
                "created_at",
                "updated_at",
            ),
            data.media,
        )
        await _copy(
            conn,
            "ledger_transaction",
            (
                "id",
                "tenant_id",
                "campaign_id",
                "agent_id",
                "amount",
                "currency",
                "kind",
                "description",
                "idempotency_key",
                "created_at",
                "actor",
            ),
            data.ledger,
        )
        await _copy(
            conn,
            "campaign_metric",
            (
                "tenant_id",
                "campaign_id",
                "minute",
                "impressions",
                "clicks",
                "likes",
                "shares",
                "comments",
                "spend",
            ),
            data.metrics,
        )
        await _copy(
            conn,
            "audit_log",
            (
                "tenant_id",
                "actor",
                "action",
                "entity_type",
                "entity_id",
                "aggregate_type",
                "aggregate_id",
                "before",
                "after",
                "created_at",
            ),
            data.audit,
        )


async def _seed_redis(redis: Redis, dataset: Dataset, data: Generated) -> None:
    """Engagement hashes under the app's own key helpers, and agents' running tasks through
    the task queue."""
    tid = dataset.tenant_id
    async with redis.pipeline(transaction=False) as pipe:
        for campaign_id, counts in data.engagement.items():
            key = keys.campaign_engagement(tid, campaign_id)
            pipe.delete(key)
            pipe.hset(key, mapping={field: counts[field] for field in keys.ENGAGEMENT_FIELDS})
        await pipe.execute()
    await seed_running_tasks(redis, tid, data.active_tasks)


async def _seed_vectors(engines: Engines, dataset: Dataset, data: Generated) -> None:
    """Campaign vectors through the pgvector adapter, as the indexer would write them."""
    records = [
        VectorRecord(
            kind=VectorKind.CAMPAIGN,
            row_id=row_id,
            vector=vector,
            text=text,
            content_hash=digest(text),
        )
        for row_id, text, vector in data.vectors
    ]
    url = engines.sqlalchemy_url(dataset.vector_database)
    async with open_pgvector(url, timeout=120) as index:
        await index.delete(dataset.tenant_id, VectorKind.CAMPAIGN, [row[0] for row in data.vectors])
        for start in range(0, len(records), 500):
            await index.upsert(dataset.tenant_id, records[start : start + 500])
