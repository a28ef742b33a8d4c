"""Building and checking the asyncio Redis client."""

from __future__ import annotations

import asyncio
from urllib.parse import urlparse

from redis.asyncio import Redis

from app.errors import StoreUnavailable


def redact(url: str) -> str:
    parsed = urlparse(url)
    if parsed.password:
        netloc = f"{parsed.username or ''}:***@{parsed.hostname}"
        if parsed.port:
            netloc += f":{parsed.port}"
        parsed = parsed._replace(netloc=netloc)
    return parsed.geturl()


def create_redis(url: str, *, timeout: float) -> Redis:
    """A pooled client whose connects and commands give up after ``timeout`` seconds."""
    return Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        health_check_interval=30,
        decode_responses=False,
    )


async def ping(client: Redis, url: str, *, timeout: float) -> str:
    try:
        async with asyncio.timeout(timeout):
            info = await client.info("server")
    except Exception as exc:
        raise StoreUnavailable("Redis", f"{redact(url)}: {type(exc).__name__}: {exc}") from exc
    return str(info.get("redis_version", "unknown"))
