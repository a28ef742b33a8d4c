"""Building and checking the SQLAlchemy async engine (asyncpg underneath)."""

from __future__ import annotations

import asyncio

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.errors import StoreUnavailable


def redact(url: str) -> str:
    """The URL as it may appear in a log line or an error: without its password."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable database URL>"


def create_engine(url: str, *, timeout: float, pool_size: int = 10) -> AsyncEngine:
    """An engine whose every statement and connect attempt is bounded by ``timeout``.

    The bound lives in the driver (asyncpg's command_timeout) so that a stuck query fails the
    one field that asked for it rather than holding the request open.

    The pool is fixed: a burst waits for a pooled connection (up to ``timeout``) rather than
    opening overflow connections that are closed again on return. Under a steady load
    above the pool size those cost a connect, and the driver's preparing of every
    statement again, per request (seen in bench/dashboard.py as a few percent of the app's
    CPU).
    """
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=0,
        pool_pre_ping=False,
        pool_timeout=timeout,
        connect_args={"timeout": timeout, "command_timeout": timeout},
    )


async def ping(engine: AsyncEngine, *, timeout: float) -> str:
    """Return the server version, or raise StoreUnavailable naming the store in one line."""
    try:
        async with asyncio.timeout(timeout), engine.connect() as conn:
            version = (await conn.execute(text("SHOW server_version"))).scalar_one()
    except Exception as exc:  # any driver, DNS or auth failure means the same thing here
        raise StoreUnavailable(
            "PostgreSQL", f"{redact(str(engine.url))}: {type(exc).__name__}: {exc}".strip()
        ) from exc
    return str(version)
