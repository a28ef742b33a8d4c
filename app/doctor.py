"""`chimera doctor`: every store checked on its own, so one that is down never hides another."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy import select

from app import migrations
from app.auth import auth_secret
from app.embedded import embedded_postgres_problem
from app.errors import ChimeraError
from app.events.relay import RELAY_LAG_ALARM_SECONDS, oldest_unpublished_age
from app.indexing.indexer import dead_letters
from app.lifespan import load_embedder
from app.queue.report import queue_report
from app.settings import Settings
from app.stores.objects.factory import open_object_store
from app.stores.postgres import engine as pg
from app.stores.postgres.tables import tenant
from app.stores.redis import client as rd
from app.stores.redis.replicated import fewest_replicas
from app.stores.vectors.factory import open_vector_index


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


async def _postgres(settings: Settings) -> Check:
    if not settings.database_url:
        reason = None if settings.is_production else embedded_postgres_problem(settings)
        return Check("postgres", False, reason or "DATABASE_URL not set and no embedded server")
    timeout = settings.store_timeout_seconds
    engine = pg.create_engine(settings.database_url, timeout=timeout)
    try:
        version = await pg.ping(engine, timeout=timeout)
        revision, head = await migrations.current_revision(engine), migrations.head_revision()
        if revision != head:
            return Check(
                "postgres",
                False,
                f"PostgreSQL {version}, migrations at {revision or 'base'}, head {head}",
            )
        dead = await dead_letters(engine)
        lag = await oldest_unpublished_age(engine)
        stuck = lag is not None and lag > RELAY_LAG_ALARM_SECONDS
        note = f", {dead} indexing events dead-lettered" if dead else ""
        note += f", oldest unpublished event {lag:.0f}s old" if stuck and lag is not None else ""
        return Check("postgres", not dead and not stuck, f"PostgreSQL {version}{note}")
    finally:
        await engine.dispose()


async def _redis(settings: Settings) -> Check:
    if not settings.redis_url:
        return Check("redis", False, "REDIS_URL not set and no embedded server")
    wanted = settings.task_replicas
    if not wanted:
        version = await rd.ping_url(settings.redis_url, timeout=settings.store_timeout_seconds)
        return Check("redis", True, f"Redis {version}")
    # One client for both questions, not ping_url's and another.
    timeout = settings.store_timeout_seconds
    redis = rd.create_redis(settings.redis_url, timeout=timeout)
    try:
        version = await rd.ping(redis, settings.redis_url, timeout=timeout)
        attached = await fewest_replicas(redis)
    finally:
        await redis.aclose()
    replicas = f"{attached} replica{'' if attached == 1 else 's'}"
    if attached < wanted:
        return Check(
            "redis",
            False,
            f"Redis {version}, {replicas} attached, but CHIMERA_TASK_REPLICAS={wanted}: "
            "every enqueueTask would wait for confirmations that cannot come",
        )
    return Check("redis", True, f"Redis {version}, {replicas} (CHIMERA_TASK_REPLICAS={wanted})")


async def _tasks(settings: Settings) -> Check:
    """The task queue's depth, oldest queued task and dead letters, over every tenant. Dead
    tasks are reported, not failed on: they are agents' failures kept for a person to see."""
    if not settings.database_url or not settings.redis_url:
        return Check("tasks", False, "needs PostgreSQL (the tenants) and Redis")
    timeout = settings.store_timeout_seconds
    engine = pg.create_engine(settings.database_url, timeout=timeout)
    redis = rd.create_redis(settings.redis_url, timeout=timeout)
    try:
        async with engine.connect() as conn:
            tenant_ids = list(await conn.scalars(select(tenant.c.id)))
        report = await queue_report(redis, tenant_ids)
        return Check("tasks", True, report.describe())
    finally:
        await redis.aclose()
        await engine.dispose()


async def _objects(settings: Settings) -> Check:
    async with open_object_store(settings, auth_secret(settings)) as store:
        return Check("objects", True, await store.ping())


async def _vectors(settings: Settings) -> Check:
    async with open_vector_index(settings) as index:
        return Check("vectors", True, await index.ping())


async def _embedder(settings: Settings) -> Check:
    embedder, error = await load_embedder(settings)
    if embedder is None:
        return Check("embedder", False, error or "no model")
    return Check("embedder", True, f"{embedder.name}, {embedder.dimensions} dimensions")


CHECKS: list[tuple[str, Callable[[Settings], Awaitable[Check]]]] = [
    ("postgres", _postgres),
    ("redis", _redis),
    ("tasks", _tasks),
    ("objects", _objects),
    ("vectors", _vectors),
    ("embedder", _embedder),
]


async def run_checks(settings: Settings) -> list[Check]:
    async def guarded(name: str, check: Callable[[Settings], Awaitable[Check]]) -> Check:
        try:
            return await check(settings)
        except ChimeraError as exc:
            return Check(name, False, exc.message)
        except Exception as exc:  # a doctor reports; it does not crash on what it finds
            return Check(name, False, f"{type(exc).__name__}: {exc}")

    return list(await asyncio.gather(*(guarded(name, check) for name, check in CHECKS)))
