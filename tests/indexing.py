"""Driving the indexer to completion from tests, instead of waiting on a background task."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select
from starlette.applications import Starlette

from app.indexing.indexer import MAX_ATTEMPTS, run_once
from app.lifespan import Stores
from app.stores.postgres.tables import outbox


async def index_everything(app: Starlette) -> int:
    """Index every event that is due. A pass skips rows another transaction has locked (the
    relay marks the same rows published), so an empty pass is only the end once no due
    event is left."""
    stores: Stores = app.state.stores
    assert stores.embedder is not None, stores.embedder_error
    settled = 0
    async with asyncio.timeout(30):
        while True:
            while processed := await run_once(stores.engine, stores.vectors, stores.embedder):
                settled += processed
            async with stores.engine.connect() as conn:
                due = await conn.scalar(
                    select(func.count())
                    .select_from(outbox)
                    .where(
                        outbox.c.indexed_at.is_(None),
                        outbox.c.index_attempts < MAX_ATTEMPTS,
                        outbox.c.index_next_at.is_(None) | (outbox.c.index_next_at <= func.now()),
                    )
                )
            if not due:
                return settled
            await asyncio.sleep(0.02)
