"""Choosing the vector index from settings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from app.errors import StoreUnavailable
from app.settings import Settings, VectorIndexKind
from app.stores.vectors.port import VectorIndex


@asynccontextmanager
async def open_vector_index(settings: Settings) -> AsyncIterator[VectorIndex]:
    timeout = settings.store_timeout_seconds
    if settings.vector_index_kind is VectorIndexKind.WEAVIATE:
        if not settings.weaviate_url:
            raise StoreUnavailable("Weaviate", "CHIMERA_VECTOR_INDEX=weaviate needs WEAVIATE_URL")
        from app.stores.vectors.weaviate import open_weaviate_index

        async with open_weaviate_index(
            settings.weaviate_url, timeout, grpc_port=settings.weaviate_grpc_port
        ) as weaviate:
            await weaviate.ensure_ready()
            yield weaviate
        return
    from app.stores.vectors.pgvector import open_pgvector

    url = settings.pgvector_url or settings.database_url
    if not url:
        raise StoreUnavailable("pgvector", "neither PGVECTOR_URL nor DATABASE_URL is set")
    async with open_pgvector(url, timeout=timeout) as pgvector:
        yield pgvector
