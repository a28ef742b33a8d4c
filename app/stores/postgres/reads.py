"""Loader reads: constant SQL straight through the driver, on the engine's own connections.

A loader's batch is one read-only statement. Through SQLAlchemy it cost three round trips
(BEGIN, the statement, ROLLBACK on return to the pool), a compilation-cache lookup that
walks the whole statement, a re-render of every expanding ``IN``, and a Python ``Row`` per
result row; for a dashboard page that was most of the app's database time. Here the SQL is
written once, with arrays for key lists (``= ANY($2::uuid[])``) so that its text never
changes, asyncpg prepares it once per connection, and the rows come back as asyncpg
records. The connection still comes from the SQLAlchemy engine's pool, outside any
transaction (a single statement is atomic on its own), so one pool and one URL serve reads
and writes, and an engine that cannot connect fails reads and writes alike.

Anyone may watch the statements go by (``watch``): the tests count them per request, and
the query plan that telemetry reports is made from the same events.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

Record = asyncpg.Record
# What a read returns and a node type wraps: an asyncpg record, or a SQLAlchemy row's mapping
# where a command primes a loader with a row it wrote; both read columns as row["name"].
Row = Any
Watcher = Callable[[AsyncEngine, str, Sequence[Any]], None]

_watchers: list[Watcher] = []


@contextmanager
def watch(watcher: Watcher) -> Iterator[None]:
    """Call ``watcher(engine, sql, args)`` before every loader statement while the block
    runs."""
    _watchers.append(watcher)
    try:
        yield
    finally:
        _watchers.remove(watcher)


async def fetch(engine: AsyncEngine, sql: str, *args: Any) -> list[Record]:
    """Rows of one statement. Its time is bounded by the connection's command timeout (set
    on the engine) and by the caller's; no transaction is opened."""
    for watcher in _watchers:
        watcher(engine, sql, args)
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        driver: Any = raw.driver_connection
        rows: list[Record] = await driver.fetch(sql, *args)
        return rows
