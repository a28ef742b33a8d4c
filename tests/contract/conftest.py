"""Fixtures the contract tests share."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
from redis.asyncio import Redis

from app.stores.redis.client import create_redis


@pytest_asyncio.fixture(scope="module")
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    """A Redis client of the test module's own, on the suite's Redis."""
    client = create_redis(redis_url, timeout=5)
    yield client
    await client.aclose()
