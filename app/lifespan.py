"""The one place that owns every store client for the life of the app."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Coroutine
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from opentelemetry.trace import Tracer
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from app.api_keys import ApiKeys
from app.commands.engagement import prune_engagement_keys
from app.commands.media import sweep_tombstones
from app.documents.store import PersistedDocuments
from app.errors import StoreUnavailable
from app.events.hub import StreamHub
from app.events.relay import run_forever as relay_forever
from app.indexing.indexer import run_forever
from app.metrics.consumer import run_forever as metrics_forever
from app.queue.sweeper import run_forever as sweep_forever
from app.ratelimit.buckets import Buckets
from app.revocations import Revocations
from app.settings import Settings
from app.stopping import stop_task
from app.stores.embeddings.port import Embedder
from app.stores.objects.factory import open_object_store
from app.stores.objects.port import ObjectStore
from app.stores.postgres import engine as pg
from app.stores.postgres.replicas import ReadReplicas
from app.stores.redis import client as rd
from app.stores.redis.layout import upgrade_layout
from app.stores.redis.replicated import fewest_replicas
from app.stores.redis.scripts import load_scripts
from app.stores.vectors.cached import SimilarCache
from app.stores.vectors.factory import open_vector_index
from app.stores.vectors.port import VectorIndex
from app.telemetry.metrics import Metrics

log = logging.getLogger(__name__)


@dataclass
class Stores:
    engine: AsyncEngine
    redis: Redis
    redis_url: str
    objects: ObjectStore
    vectors: VectorIndex
    # None when no model could be loaded: text search then fails with a clear error, and
    # searching by a client's vector still works. Never a stand-in that ranks at random.
    embedder: Embedder | None
    embedder_error: str | None = None
    embedding_cache_seconds: int = 0
    # The tenants' and clients' rate-limit buckets, on the same Redis.
    buckets: Buckets | None = None
    # Documents requests may name by hash (APQ in Redis, trusted ones in PostgreSQL).
    documents: PersistedDocuments | None = None
    # Tenant API keys, verified against their rows (remembered a few seconds).
    api_keys: ApiKeys | None = None
    # Revoked JWTs, by id, in Redis (checked once per token every few seconds).
    revocations: Revocations | None = None
    # Loader batches' spans go here when tracing is on (app/telemetry/).
    tracer: Tracer | None = None
    # The app's metrics (app/telemetry/metrics.py); None outside a served app.
    metrics: Metrics | None = None
    # Streaming replicas queries read from (DATABASE_READ_URLS); None: all on the primary.
    replicas: ReadReplicas | None = None


@asynccontextmanager
async def open_stores(settings: Settings, auth_secret: str) -> AsyncIterator[Stores]:
    """Connect to every configured store and check each answers, or fail naming the store."""
    if not settings.database_url:
        raise StoreUnavailable("PostgreSQL", "DATABASE_URL is not set")
    if not settings.redis_url:
        raise StoreUnavailable("Redis", "REDIS_URL is not set")
    timeout = settings.store_timeout_seconds
    async with AsyncExitStack() as stack:
        engine = pg.create_engine(
            settings.database_url, timeout=timeout, pool_size=settings.db_pool_size
        )
        stack.push_async_callback(engine.dispose)
        redis = rd.create_redis(
            settings.redis_url, timeout=timeout, max_connections=settings.redis_pool_size
        )
        stack.push_async_callback(redis.aclose)
        objects = await stack.enter_async_context(open_object_store(settings, auth_secret))
        await pg.ping(engine, timeout=timeout)
        await rd.ping(redis, settings.redis_url, timeout=timeout)
        await load_scripts(redis)
        await upgrade_layout(redis)
        await _warn_of_missing_task_replicas(redis, settings.task_replicas)
        await objects.ping()
        vectors: VectorIndex = await stack.enter_async_context(open_vector_index(settings))
        if settings.similar_cache_seconds:
            vectors = SimilarCache(vectors, redis, settings.similar_cache_seconds)
        embedder, embedder_error = await load_embedder(settings)
        replicas = await _read_replicas(settings, engine, redis, stack)
        yield Stores(
            engine=engine,
            redis=redis,
            redis_url=settings.redis_url,
            objects=objects,
            vectors=vectors,
            embedder=embedder,
            embedder_error=embedder_error,
            embedding_cache_seconds=settings.embedding_cache_seconds,
            buckets=Buckets(redis, timeout),
            api_keys=ApiKeys(engine, timeout),
            revocations=Revocations(redis, timeout),
            documents=PersistedDocuments(
                engine,
                redis,
                mode=settings.trusted_documents,
                automatic=settings.automatic_persisted_queries,
                ttl_seconds=settings.apq_ttl_seconds,
                timeout=timeout,
            ),
            replicas=replicas,
        )


async def _warn_of_missing_task_replicas(redis: Redis, wanted: int) -> None:
    """Said at start-up rather than by every enqueueTask's error: replicas may attach later,
    so it is a warning, not a refusal to start."""
    if wanted and (attached := await fewest_replicas(redis)) < wanted:
        log.warning(
            "CHIMERA_TASK_REPLICAS=%d, but Redis has %d replica(s) attached: enqueueTask "
            "answers STORE_UNAVAILABLE until enough are",
            wanted,
            attached,
        )


async def _read_replicas(
    settings: Settings, primary: AsyncEngine, redis: Redis, stack: AsyncExitStack
) -> ReadReplicas | None:
    """An engine per replica, looked at once: a replica that does not answer yet does not
    stop the start-up (its reads go to the primary until it does)."""
    if not settings.read_urls:
        return None
    engines = []
    for url in settings.read_urls:
        replica = pg.create_engine(
            url, timeout=settings.store_timeout_seconds, pool_size=settings.db_pool_size
        )
        stack.push_async_callback(replica.dispose)
        engines.append(replica)
    replicas = ReadReplicas.of(primary, engines, settings.replica_max_lag_seconds, redis)
    await replicas.check()
    return replicas


async def load_embedder(settings: Settings) -> tuple[Embedder | None, str | None]:
    from app.stores.embeddings.budget import EmbedLimits
    from app.stores.embeddings.minilm import EmbedderUnavailable, load_minilm

    limits = EmbedLimits(
        tokens_per_request=settings.max_embed_tokens_per_request,
        tokens_per_tenant_per_minute=settings.embed_tokens_per_tenant_per_minute,
    )
    try:
        return await asyncio.to_thread(load_minilm, limits=limits), None
    except EmbedderUnavailable as exc:
        log.warning("semantic text search is off: %s", exc)
        return None, str(exc)


@asynccontextmanager
async def running(job: Coroutine[Any, Any, None] | None, name: str) -> AsyncIterator[None]:
    """Run ``job`` as a task for as long as the block lasts (None: nothing to run), then
    cancel it and wait, within a bound, for it to finish (app/stopping.py)."""
    if job is None:
        yield
        return
    task = asyncio.create_task(job, name=name)
    try:
        yield
    finally:
        await stop_task(task)


def background_indexer(stores: Stores, settings: Settings) -> AbstractAsyncContextManager[None]:
    """Index outbox events in this process, unless a separate worker does it."""
    embedder = stores.embedder if settings.indexer_enabled else None
    job = (
        run_forever(stores.engine, stores.vectors, embedder, tracer=stores.tracer)
        if embedder is not None
        else None
    )
    return running(job, "indexer")


def background_sweeper(stores: Stores, interval: float) -> AbstractAsyncContextManager[None]:
    """Retry object deletes that failed, and drop expired recordEngagement idempotency keys,
    for as long as the app runs (0: never)."""

    async def loop() -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                removed = await sweep_tombstones(stores.engine, stores.objects)
                if removed:
                    log.info("swept %d orphaned media objects", removed)
                await prune_engagement_keys(stores.engine)
            except Exception:  # a sweep must never take the app down; it runs again later
                log.exception("media sweep failed")

    return running(loop() if interval > 0 else None, "media-sweeper")


def background_replica_watch(stores: Stores) -> AbstractAsyncContextManager[None]:
    """Look at the read replicas' lag a few times a second (app/stores/postgres/replicas.py)."""
    job = stores.replicas.watch_forever() if stores.replicas is not None else None
    return running(job, "replica-watch")


def background_key_use(stores: Stores) -> AbstractAsyncContextManager[None]:
    """Write, once a minute, when each API key used since was last used."""
    job = stores.api_keys.record_use_forever() if stores.api_keys is not None else None
    return running(job, "api-key-use")


def background_refunds(stores: Stores) -> AbstractAsyncContextManager[None]:
    """Give back, every second, what charged requests did not spend and no later request
    of this instance has carried back yet (app/ratelimit/buckets.py)."""
    job = stores.buckets.flush_forever() if stores.buckets is not None else None
    return running(job, "rate-limit-refunds")


@asynccontextmanager
async def event_fanout(stores: Stores, settings: Settings) -> AsyncIterator[StreamHub]:
    """The relay (outbox to Redis Streams) and this process's subscriber fan-out."""
    block_ms = int(min(2.0, settings.store_timeout_seconds / 2) * 1000)  # under the socket timeout
    # A blocking XREAD holds its connection while it waits: readers get a pool of their own,
    # so they never starve requests of the bounded one (nor requests them).
    readers = rd.create_redis(stores.redis_url, timeout=settings.store_timeout_seconds)
    hub = StreamHub(
        stores.redis,
        readers,
        block_ms=block_ms,
        per_tenant_cap=settings.max_subscriptions_per_tenant,
        timeout=settings.store_timeout_seconds,
    )
    relay = (
        relay_forever(
            stores.engine,
            stores.redis,
            metrics=stores.metrics,
            tracer=stores.tracer,
            partition_count=settings.relay_partitions,
        )
        if settings.relay_enabled
        else None
    )
    # The metrics consumer goes where the relay goes: both follow the outbox, and a worker
    # that takes the relay off the app instances takes this too.
    metrics = metrics_forever(stores.engine) if settings.relay_enabled else None
    # So does the task sweeper: background upkeep a worker may take off the app instances.
    sweeper = sweep_forever(stores.engine, stores.redis) if settings.relay_enabled else None
    async with running(relay, "relay"), running(metrics, "metrics"), running(sweeper, "tasks"):
        try:
            yield hub
        finally:
            await hub.close()
            await readers.aclose()
