"""What every loader shares: the tenant it is bound to, a store timeout, and error mapping.

A loader is created per request with the caller's Principal, so its cache can only ever hold
that tenant's rows; its batch function makes one call to one store for all keys collected in
that tick and returns results in key order.
"""

from __future__ import annotations

import asyncio
from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from aiodataloader import DataLoader
from opentelemetry import trace
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from app.auth import Principal
from app.errors import ChimeraError, StoreUnavailable
from app.stores.embeddings.port import Embedder
from app.stores.failures import is_store_failure
from app.stores.postgres import reads
from app.stores.postgres.reads import Record
from app.stores.vectors.port import VectorIndex

K = TypeVar("K")
V = TypeVar("V")

tracer = trace.get_tracer("chimera.loaders")


@dataclass(frozen=True)
class LoaderContext:
    principal: Principal
    engine: AsyncEngine
    redis: Redis
    vectors: VectorIndex
    embedder: Embedder | None
    timeout: float
    embedding_cache_seconds: int = 0  # 0: search texts are embedded every time


class TenantLoader(DataLoader[K, V], Generic[K, V]):
    """Base of every loader: subclasses implement :meth:`fetch` for one store call."""

    store: str = "PostgreSQL"

    def __init__(self, ctx: LoaderContext) -> None:
        super().__init__()
        self.ctx = ctx
        self.tenant_id = ctx.principal.tenant_id

    async def batch_load_fn(self, keys: list[K]) -> list[V]:
        with tracer.start_as_current_span(
            f"loader {type(self).__name__}",
            attributes={"chimera.store": self.store, "chimera.batch_size": len(keys)},
        ):
            try:
                async with asyncio.timeout(self.ctx.timeout):
                    return list(await self.fetch(keys))
            except ChimeraError:
                raise
            except TimeoutError as exc:
                raise StoreUnavailable(self.store, "timed out") from exc
            except Exception as exc:
                if is_store_failure(exc):
                    raise StoreUnavailable(self.store) from exc
                raise

    @abstractmethod
    async def fetch(self, keys: Sequence[K]) -> Sequence[V]:
        """Fetch all keys in one store call; return one value per key, in key order."""

    async def read(self, sql: str, *args: Any) -> list[Record]:
        """One read-only statement's rows (app/stores/postgres/reads.py)."""
        return await reads.fetch(self.ctx.engine, sql, *args)
