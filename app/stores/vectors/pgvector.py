"""The embedded vector index: pgvector inside PostgreSQL (HNSW, cosine distance).

One table holds every kind, with the tenant in every row and in every query's WHERE. The
adapter owns its schema the way the Weaviate adapter owns its collections (created on start,
idempotently), because it may live in another database than the relational core: the
machine's PostgreSQL may lack the extension while an embedded one has it.

HNSW is approximate; with a tenant filter an index scan could stop before it found enough
matching rows, so iterative scans are on (pgvector 0.8), and ef_search is raised for recall.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID

import asyncpg
from pgvector import Vector
from pgvector.asyncpg import register_vector
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.errors import StoreUnavailable
from app.stores.postgres.engine import create_engine, redact
from app.stores.vectors.port import (
    DIMENSIONS,
    IndexedEntry,
    VectorHit,
    VectorKind,
    VectorQuery,
    VectorRecord,
    object_uuid,
)

EF_SEARCH = 100

SCHEMA = [
    "CREATE EXTENSION IF NOT EXISTS vector",
    f"""CREATE TABLE IF NOT EXISTS vector_item (
        id uuid PRIMARY KEY,
        tenant_id uuid NOT NULL,
        kind text NOT NULL,
        row_id uuid NOT NULL,
        owner_id uuid,
        text text NOT NULL,
        content_hash text NOT NULL,
        embedding vector({DIMENSIONS}) NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now()
    )""",
    "CREATE UNIQUE INDEX IF NOT EXISTS vector_item_row ON vector_item (tenant_id, kind, row_id)",
    "CREATE INDEX IF NOT EXISTS vector_item_hnsw ON vector_item "
    "USING hnsw (embedding vector_cosine_ops)",
    "CREATE INDEX IF NOT EXISTS vector_item_owner ON vector_item (tenant_id, kind, owner_id)",
]

# Approximate (HNSW) for tenant-wide searches. A search scoped to one owner (an agent's
# memories, a campaign's media) matches a handful of rows among many: an HNSW scan filtered
# that tightly can stop before it finds them, so those rows are ranked exactly instead, which
# the owner index makes cheap. "+ 0" keeps the planner off the HNSW index for that ordering.
SEARCH = """
SELECT q.ord, h.kind, h.row_id, h.score
FROM unnest(CAST(:vectors AS vector[]), CAST(:excludes AS uuid[]), CAST(:owners AS uuid[]))
     WITH ORDINALITY AS q(v, ex, owner, ord)
CROSS JOIN LATERAL (
    SELECT kind, row_id, 1 - (embedding <=> q.v) AS score
    FROM vector_item
    WHERE tenant_id = :tenant AND kind = ANY(:kinds)
      AND (q.owner IS NULL OR owner_id = q.owner)
      AND (q.ex IS NULL OR row_id <> q.ex)
    ORDER BY (embedding <=> q.v) {exact}
    LIMIT :limit
) h
"""

SIMILAR = """
SELECT s.row_id AS source, h.kind, h.row_id, h.score
FROM vector_item s
CROSS JOIN LATERAL (
    SELECT kind, row_id, 1 - (embedding <=> s.embedding) AS score
    FROM vector_item
    WHERE tenant_id = :tenant AND kind = ANY(:kinds) AND row_id <> s.row_id
    ORDER BY embedding <=> s.embedding
    LIMIT :limit
) h
WHERE s.tenant_id = :tenant AND s.kind = :kind AND s.row_id = ANY(:rows)
"""


class PgVectorIndex:
    name = "pgvector"

    def __init__(self, engine: AsyncEngine, url: str, timeout: float) -> None:
        self.engine = engine
        self.url = url
        self.timeout = timeout

    async def _run(
        self, statement: str, params: dict[str, Any] | list[dict[str, Any]]
    ) -> list[Any]:
        """One statement in its own transaction, bounded; rows if it returns any."""
        try:
            async with asyncio.timeout(self.timeout), self.engine.begin() as conn:
                result = await conn.execute(text(statement), params)
                return list(result) if result.returns_rows else []
        except (OSError, TimeoutError, asyncpg.PostgresConnectionError) as exc:
            raise StoreUnavailable("pgvector", type(exc).__name__) from exc

    async def ensure_ready(self) -> None:
        """Nothing to do: the schema is created before the engine is (see open_pgvector)."""

    async def upsert(self, tenant_id: UUID, records: Sequence[VectorRecord]) -> None:
        if not records:
            return
        rows = [
            {
                "id": object_uuid(tenant_id, r.kind, r.row_id),
                "tenant": tenant_id,
                "kind": r.kind.value,
                "row": r.row_id,
                "owner": r.owner_id,
                "text": r.text,
                "hash": r.content_hash,
                "vec": Vector(list(r.vector)),
            }
            for r in records
        ]
        statement = """
            INSERT INTO vector_item (id, tenant_id, kind, row_id, owner_id, text, content_hash,
                                     embedding)
            VALUES (:id, :tenant, :kind, :row, :owner, :text, :hash, :vec)
            ON CONFLICT (id) DO UPDATE SET owner_id = EXCLUDED.owner_id, text = EXCLUDED.text,
                content_hash = EXCLUDED.content_hash, embedding = EXCLUDED.embedding,
                updated_at = now()
        """
        await self._run(statement, rows)

    async def delete(self, tenant_id: UUID, kind: VectorKind, row_ids: Sequence[UUID]) -> None:
        if row_ids:
            await self._run(
                "DELETE FROM vector_item WHERE tenant_id = :tenant AND kind = :kind "
                "AND row_id = ANY(:rows)",
                {"tenant": tenant_id, "kind": kind.value, "rows": list(row_ids)},
            )

    async def search(self, tenant_id: UUID, query: VectorQuery) -> list[VectorHit]:
        return (await self.search_many(tenant_id, [query]))[0]

    async def search_many(
        self, tenant_id: UUID, queries: Sequence[VectorQuery]
    ) -> list[list[VectorHit]]:
        """One statement per group of queries that share kinds and limit: usually one."""
        results: list[list[VectorHit]] = [[] for _ in queries]
        groups: dict[tuple[tuple[VectorKind, ...], int, bool], list[int]] = defaultdict(list)
        for index, query in enumerate(queries):
            groups[(query.kinds, query.limit, query.owner_id is not None)].append(index)
        for (kinds, limit, scoped), members in groups.items():
            rows = await self._run(
                SEARCH.format(exact="+ 0" if scoped else ""),
                {
                    "vectors": [Vector(list(queries[i].vector)) for i in members],
                    "excludes": [queries[i].exclude_row_id for i in members],
                    "owners": [queries[i].owner_id for i in members],
                    "tenant": tenant_id,
                    "kinds": [k.value for k in kinds],
                    "limit": limit,
                },
            )
            for row in rows:
                results[members[row.ord - 1]].append(
                    VectorHit(VectorKind(row.kind), row.row_id, float(row.score))
                )
        for hits in results:  # iterative scans may relax the order; restore it
            hits.sort(key=lambda hit: hit.score, reverse=True)
        return results

    async def similar_to(
        self,
        tenant_id: UUID,
        kind: VectorKind,
        row_ids: Sequence[UUID],
        kinds: tuple[VectorKind, ...],
        limit: int,
    ) -> dict[UUID, list[VectorHit]]:
        rows = await self._run(
            SIMILAR,
            {
                "tenant": tenant_id,
                "kind": kind.value,
                "rows": list(row_ids),
                "kinds": [k.value for k in kinds],
                "limit": limit,
            },
        )
        found: dict[UUID, list[VectorHit]] = defaultdict(list)
        for row in rows:
            found[row.source].append(VectorHit(VectorKind(row.kind), row.row_id, float(row.score)))
        for hits in found.values():
            hits.sort(key=lambda hit: hit.score, reverse=True)
        return dict(found)

    async def entries(self, tenant_id: UUID, kind: VectorKind) -> list[IndexedEntry]:
        rows = await self._run(
            "SELECT row_id, content_hash FROM vector_item WHERE tenant_id = :tenant "
            "AND kind = :kind",
            {"tenant": tenant_id, "kind": kind.value},
        )
        return [IndexedEntry(row.row_id, row.content_hash) for row in rows]

    async def tenants(self) -> list[UUID]:
        rows = await self._run("SELECT DISTINCT tenant_id FROM vector_item", {})
        return [row.tenant_id for row in rows]

    async def ping(self) -> str:
        rows = await self._run("SELECT extversion FROM pg_extension WHERE extname = 'vector'", {})
        return f"pgvector {rows[0].extversion} at {redact(self.url)}"

    async def close(self) -> None:
        await self.engine.dispose()


async def _prepare_schema(engine: AsyncEngine, url: str) -> None:
    async with engine.begin() as conn:
        available = (
            await conn.execute(text("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'"))
        ).first()
        if available is None:
            raise StoreUnavailable(
                "pgvector",
                f"the PostgreSQL server at {redact(url)} has no 'vector' extension; point "
                "PGVECTOR_URL at one that has it (the embedded server does) or set WEAVIATE_URL",
            )
        # Concurrent starters serialise here rather than race on CREATE EXTENSION.
        await conn.execute(text("SELECT pg_advisory_xact_lock(0x50475643)"))
        for statement in SCHEMA:
            await conn.execute(text(statement))


@asynccontextmanager
async def open_pgvector(url: str, *, timeout: float) -> AsyncIterator[PgVectorIndex]:
    setup = create_engine(url, timeout=timeout, pool_size=1)
    try:
        await _prepare_schema(setup, url)
    except StoreUnavailable:
        raise
    except Exception as exc:
        raise StoreUnavailable("pgvector", f"{redact(url)}: {type(exc).__name__}: {exc}") from exc
    finally:
        await setup.dispose()
    engine = create_engine(url, timeout=timeout, pool_size=5)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # The vector codec needs the extension's type oids, so it is registered per
        # connection, after the schema exists; ef_search and iterative scans likewise.
        dbapi_connection.run_async(register_vector)
        dbapi_connection.run_async(
            lambda conn: conn.execute(
                f"SET hnsw.ef_search = {EF_SEARCH}; SET hnsw.iterative_scan = relaxed_order"
            )
        )

    index = PgVectorIndex(engine, url, timeout)
    try:
        yield index
    finally:
        await index.close()
