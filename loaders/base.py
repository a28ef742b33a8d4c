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
from time import perf_counter
from typing import Any, Generic, TypeVar

from aiodataloader import DataLoader
from opentelemetry import context, trace
from opentelemetry.trace import Status, StatusCode, Tracer
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from app.auth import Principal
from app.errors import ChimeraError, StoreUnavailable
from app.stores.embeddings.port import Embedder
from app.stores.failures import is_store_failure
from app.stores.postgres import reads
from app.stores.postgres.reads import Record
from app.stores.postgres.replicas import ReadReplicas
from app.stores.vectors.port import VectorIndex
from app.telemetry.metrics import Metrics
from loaders.plan import PlanRecorder

K = TypeVar("K")
V = TypeVar("V")


@dataclass(frozen=True)
class LoaderContext:
    principal: Principal
    engine: AsyncEngine
    redis: Redis
    vectors: VectorIndex
    embedder: Embedder | None
    timeout: float
    embedding_cache_seconds: int = 0  # 0: search texts are embedded every time
    # The app's tracer when tracing is on; None costs nothing (app/telemetry/).
    tracer: Tracer | None = None
    # The app's instruments; None records nothing (commands that read without serving).
    metrics: Metrics | None = None
    # The request's plan when it asked for one (loaders/plan.py); None records nothing.
    plan: PlanRecorder | None = None
    # With read replicas, where a read that failed on one is retried (``engine`` is then
    # the replica app/extensions/read_routing.py chose, or the primary).
    replicas: ReadReplicas | None = None


class TenantLoader(DataLoader[K, V], Generic[K, V]):
    """Base of every loader: subclasses implement :meth:`fetch` for one store call."""

    store: str = "PostgreSQL"

    def __init__(self, ctx: LoaderContext) -> None:
        super().__init__()
        self.ctx = ctx
        self.tenant_id = ctx.principal.tenant_id
        if ctx.plan is not None:
            # Counting loads only for a request that asked for its plan: an attribute of
            # this instance, so every other request's loads run the class's method as is.
            self.load = self._counted_load  # type: ignore[method-assign]

    def _counted_load(self, key: K) -> Any:
        assert self.ctx.plan is not None
        self.ctx.plan.called(self, key)
        return type(self).load(self, key)  # the class's, a subclass's own included

    async def batch_load_fn(self, keys: list[K]) -> list[V]:
        if self.ctx.plan is not None:
            return await self._planned(keys)
        return await self._measured(keys)

    async def _planned(self, keys: list[K]) -> list[V]:
        plan = self.ctx.plan
        assert plan is not None
        step = plan.started(self, self.store, keys)
        try:
            values = await self._measured(keys)
        except Exception as exc:
            plan.finished(step, None, type(exc).__name__)
            raise
        plan.finished(step, values, None)
        return values

    async def _measured(self, keys: list[K]) -> list[V]:
        metrics = self.ctx.metrics
        if metrics is None:
            return await self._traced(keys)
        name = type(self).__name__
        started = perf_counter()
        try:
            return await self._traced(keys)
        except Exception as exc:
            if isinstance(exc, StoreUnavailable) or not isinstance(exc, ChimeraError):
                metrics.store_errors.add(1, {"store": self.store})
            raise
        finally:
            metrics.store_call_duration.record(
                perf_counter() - started, {"store": self.store, "loader": name}
            )
            metrics.batch_size.record(len(keys), {"loader": name})

    async def _traced(self, keys: list[K]) -> list[V]:
        tracer = self.ctx.tracer
        if tracer is None:
            return await self._load(keys)
        name = type(self).__name__
        span = tracer.start_span(
            f"{self.store} {name}",
            attributes={
                "chimera.store": self.store,
                "chimera.loader": name,
                "chimera.batch_size": len(keys),
            },
        )
        # Made current by hand: start_as_current_span's two generator-based context managers
        # cost a fifth of a span again (7 us of 35, measured), on every batch of every request.
        token = context.attach(trace.set_span_in_context(span))
        try:
            return await self._load(keys)
        except BaseException as exc:
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, str(exc)))
            raise
        finally:
            context.detach(token)
            span.end()

    async def _load(self, keys: list[K]) -> list[V]:
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
        """One read-only statement's rows (app/stores/postgres/reads.py); on a replica that
        fails, from the primary instead."""
        engine, replicas = self.ctx.engine, self.ctx.replicas
        if replicas is None or engine is replicas.primary:
            return await reads.fetch(engine, sql, *args)
        try:
            return await reads.fetch(engine, sql, *args)
        except Exception as exc:
            if not is_store_failure(exc):
                raise
            replicas.failed(engine, exc)
            return await reads.fetch(replicas.primary, sql, *args)

    async def read_known(self, sql: str, *args: Any) -> list[Record]:
        """Like ``read``, for rows the request knows exist: an empty answer from a replica
        is asked of the primary again, since a replica within its allowed lag may not have
        replayed the rows' creation yet (the caller's tenant, found on the primary by
        authentication a moment ago, must not vanish behind that lag)."""
        rows = await self.read(sql, *args)
        replicas = self.ctx.replicas
        if rows or replicas is None or self.ctx.engine is replicas.primary:
            return rows
        return await reads.fetch(replicas.primary, sql, *args)
