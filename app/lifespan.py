"""The one place that owns every store client for the life of the app."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from app.errors import StoreUnavailable
from app.settings import Settings
from app.stores.postgres import engine as pg
from app.stores.redis import client as rd

log = logging.getLogger(__name__)


@dataclass
class Stores:
    engine: AsyncEngine
    redis: Redis
    redis_url: str


@asynccontextmanager
async def open_stores(settings: Settings) -> AsyncIterator[Stores]:
    """Connect to every configured store and check each answers, or fail naming the store."""
    if not settings.database_url:
        raise StoreUnavailable("PostgreSQL", "DATABASE_URL is not set")
    if not settings.redis_url:
        raise StoreUnavailable("Redis", "REDIS_URL is not set")
    timeout = settings.store_timeout_seconds
    engine = pg.create_engine(
        settings.database_url, timeout=timeout, pool_size=settings.db_pool_size
    )
    redis = rd.create_redis(settings.redis_url, timeout=timeout)
    try:
        await pg.ping(engine, timeout=timeout)
        await rd.ping(redis, settings.redis_url, timeout=timeout)
        yield Stores(engine=engine, redis=redis, redis_url=settings.redis_url)
    finally:
        await redis.aclose()
        await engine.dispose()
