"""The numbers metrics read from the stores rather than count in the process: backlogs and
dead letters, the same on every instance (they are shared state).

Each is one indexed count, whatever the number of tenants. The queue's depth is not among
them: it is kept per tenant (a sorted set each, app/queue), and adding it up would cost a
Redis command per tenant per refresh on every instance.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy import func, select

from app.events.relay import oldest_unpublished_age
from app.indexing.indexer import MAX_ATTEMPTS, dead_letters
from app.lifespan import Stores
from app.stores.postgres.tables import outbox

Reader = Callable[[], Awaitable[float | int | None]]


def store_readers(stores: Stores) -> dict[str, Reader]:
    """A reader per StoreGauges field."""
    engine = stores.engine

    async def count(*conditions: object) -> int:
        async with engine.connect() as conn:
            value = await conn.scalar(select(func.count()).select_from(outbox).where(*conditions))  # type: ignore[arg-type]
        return int(value or 0)

    async def outbox_backlog() -> int:
        return await count(outbox.c.published_at.is_(None))

    async def indexer_backlog() -> int:
        return await count(outbox.c.indexed_at.is_(None), outbox.c.index_attempts < MAX_ATTEMPTS)

    return {
        "outbox_backlog": outbox_backlog,
        "outbox_oldest_seconds": lambda: oldest_unpublished_age(engine),
        "indexer_backlog": indexer_backlog,
        "dead_letters": lambda: dead_letters(engine),
    }
