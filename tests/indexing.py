"""Driving the indexer to completion from tests, instead of waiting on a background task."""

from __future__ import annotations

from starlette.applications import Starlette

from app.indexing.indexer import run_once
from app.lifespan import Stores


async def index_everything(app: Starlette) -> int:
    stores: Stores = app.state.stores
    assert stores.embedder is not None, stores.embedder_error
    settled = 0
    while processed := await run_once(stores.engine, stores.vectors, stores.embedder):
        settled += processed
    return settled
