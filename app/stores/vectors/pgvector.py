"""The embedded vector index: pgvector inside PostgreSQL (HNSW, cosine distance).

One table holds every kind, with the tenant in every row and in every query's WHERE. The
adapter owns its schema the way the Weaviate adapter owns its collections (created on start,
idempotently), because it may live in another database than the relational core: the
machine's PostgreSQL may lack the extension while an embedded one has it.

How a search is planned (docs/decisions/0016-pgvector-search-at-scale.md; the numbers are in
docs/benchmarks.md):

- Scoped to one owner (an agent's memories, a campaign's media): the owner index finds the
  handful of rows and they are ranked exactly. An HNSW scan filtered that tightly could stop
  before it found them.
- Tenant-wide, for a tenant with few matching rows: ranked exactly too. Reading a few thousand
  rows through the tenant index costs about as much as one HNSW walk, and is exact; a filtered
  HNSW walk must pass over about ``fetch / share`` rows to collect its hits, which for a
  tenant holding 1% of the index costs over ten times an exact ranking of its rows.
- Tenant-wide, for a larger tenant: an HNSW scan filtered by tenant and kind, with iterative
  scans (pgvector 0.8) so the filter cannot starve it. It fetches twice the hits wanted and
  keeps the closest: with relaxed ordering, later scan rounds can still find rows closer than
  the first round's last, and the margin adds about 0.015 to recall@10 for tenants that hold
  5% to 10% of the graph.

Which tenant-wide path runs is decided inside the statement from a count of the tenant's
matching rows, capped at the cutoff (an index-only scan of at most a few thousand entries).
The cutoff grows with the square root of the index's size: exact ranking costs about ``n`` row
reads for a tenant of ``n`` rows, the HNSW path about ``fetch * total / n``; they meet where
``n * n`` is proportional to ``fetch * total``.

The plan is not left to the planner's estimates, which had it wrong both ways: a catch-all
``owner_id = $owner OR $owner IS NULL`` predicate once made a tenant holding 80% of the rows
look like 0.5% of them (so: a sequential scan of the whole table), and a generic plan sees
every tenant as the average one. Seq scans and sorts are disabled on the adapter's
connections, which leaves the HNSW index for the graph path and the tenant or owner index for
the exact ones whatever the parameters; so one generic plan serves every tenant, and the
choice between the paths is made when the statement runs.
"""

from __future__ import annotations

import asyncio
import re
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from functools import cache
from typing import Any
from uuid import UUID

import asyncpg
from pgvector import Vector
from pgvector.asyncpg import register_vector
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.errors import StoreUnavailable
from app.stores.failures import is_store_failure
from app.stores.postgres import reads
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

HNSW_INDEX = "vector_item_hnsw"
# Candidates per round of an HNSW scan. 100 gave recall@10 of 0.96 to 0.98 for large tenants,
# close to the 0.95 wanted; 150 gives 0.97 to 0.99 for about half a millisecond more
# (docs/benchmarks.md).
EF_SEARCH = 150
# The HNSW path of a search fetches this many candidates per hit wanted and keeps the closest.
# similar_to fetches no more than it wants: its sources are rows of the graph, whose
# neighbourhoods the walk finds (recall@10 0.98 to 1.00 without a margin, docs/benchmarks.md).
CANDIDATES = 2
# Tenant-wide searches rank exactly when the tenant has at most
# max(EXACT_FLOOR, sqrt(EXACT_BALANCE * fetch * rows in the index)) matching rows: 5,000 for a
# top 10 at 100k rows. EXACT_BALANCE puts the cutoff where the two paths, each forced, took
# about as long (the "two tenant-wide paths" table of bench/vector_search.py).
EXACT_BALANCE = 12.5
EXACT_FLOOR = 2000

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
    f"CREATE INDEX IF NOT EXISTS {HNSW_INDEX} ON vector_item "
    "USING hnsw (embedding vector_cosine_ops)",
    "CREATE INDEX IF NOT EXISTS vector_item_owner ON vector_item (tenant_id, kind, owner_id)",
]

# Set on every connection of the adapter's own pool, which runs only this module's statements.
# With seq scans and sorts disabled, the cheapest remaining plan for "ORDER BY embedding <=> v
# LIMIT n" is the HNSW index, and for an exact ordering ("... + 0", which the HNSW index cannot
# serve) an index scan on the tenant or owner index followed by the one sort it cannot avoid.
# Since that fixes the plan's shape whatever the parameters, the generic plan is as good as a
# custom one, and reusing it saves planning the statement on every search. The other
# statements are unharmed: upserts and deletes go through unique indexes, `entries` reads one
# tenant's rows through the tenant index, `tenants` walks an index in order. Per connection
# rather than SET LOCAL per search: that would cost a statement per search, more than the gate.
SESSION_SETTINGS = (
    "SET enable_seqscan = off; SET enable_sort = off; SET plan_cache_mode = force_generic_plan; "
    f"SET hnsw.ef_search = {EF_SEARCH}; SET hnsw.iterative_scan = relaxed_order"
)


def _nearest(vector: str, exclude: str, *, exact: bool, limit: str = ":fetch") -> str:
    """The closest rows of the tenant and kinds to ``vector`` (a SQL expression)."""
    order = f"(embedding <=> {vector}) + 0" if exact else f"embedding <=> {vector}"
    return f"""
    SELECT kind, row_id, 1 - (embedding <=> {vector}) AS score
    FROM vector_item
    WHERE tenant_id = :tenant AND kind = ANY(:kinds)
      AND {exclude}
    ORDER BY {order}
    LIMIT {limit}
"""


# Whether the tenant is small enough to rank exactly: at most the cutoff matching rows, counted
# no further than the cutoff. Referenced by both branches below, so it runs once (an InitPlan)
# and the branch that does not apply is never executed.
GATE = f"""
WITH cutoff AS (
    SELECT greatest({EXACT_FLOOR}, sqrt({EXACT_BALANCE} * :fetch * greatest(reltuples, 0)))::int AS n
    FROM pg_class WHERE oid = 'vector_item'::regclass
), gate AS (
    SELECT count(*) <= (SELECT n FROM cutoff) AS exact
    FROM (
        SELECT 1 FROM vector_item WHERE tenant_id = :tenant AND kind = ANY(:kinds)
        LIMIT (SELECT n FROM cutoff) + 1
    ) matching
)"""

# Tenant-wide searches, one row of :vectors per query, by each path; SEARCH picks one.
_TENANT_WIDE = """
SELECT q.ord, h.kind, h.row_id, h.score
FROM unnest(CAST(:vectors AS vector[]), CAST(:excludes AS uuid[]))
     WITH ORDINALITY AS q(v, ex, ord)
CROSS JOIN LATERAL ({nearest}) h"""
_NOT_EXCLUDED = "(q.ex IS NULL OR row_id <> q.ex)"
SEARCH_EXACT = _TENANT_WIDE.format(nearest=_nearest("q.v", _NOT_EXCLUDED, exact=True))
SEARCH_GRAPH = _TENANT_WIDE.format(nearest=_nearest("q.v", _NOT_EXCLUDED, exact=False))
SEARCH = f"""{GATE}{SEARCH_EXACT}
WHERE (SELECT exact FROM gate)
UNION ALL{SEARCH_GRAPH}
WHERE NOT (SELECT exact FROM gate)"""

# Searches scoped to one owner each: exact, through the owner index. The owner is a plain
# equality (no "OR owner IS NULL") so that it is an index condition.
SEARCH_OWNED = """
SELECT q.ord, h.kind, h.row_id, h.score
FROM unnest(CAST(:vectors AS vector[]), CAST(:excludes AS uuid[]), CAST(:owners AS uuid[]))
     WITH ORDINALITY AS q(v, ex, owner, ord)
CROSS JOIN LATERAL ({nearest}) h""".format(
    nearest=_nearest("q.v", f"owner_id = q.owner AND {_NOT_EXCLUDED}", exact=True, limit=":limit")
)

# The neighbours of indexed rows, tenant-wide, each excluding itself: the same two paths.
_NEIGHBOURS = """
SELECT s.row_id AS source, h.kind, h.row_id, h.score
FROM vector_item s
CROSS JOIN LATERAL ({nearest}) h
WHERE s.tenant_id = :tenant AND s.kind = :kind AND s.row_id = ANY(:rows)"""
SIMILAR_EXACT = _NEIGHBOURS.format(
    nearest=_nearest("s.embedding", "row_id <> s.row_id", exact=True)
)
SIMILAR_GRAPH = _NEIGHBOURS.format(
    nearest=_nearest("s.embedding", "row_id <> s.row_id", exact=False)
)
SIMILAR = f"""{GATE}{SIMILAR_EXACT}
  AND (SELECT exact FROM gate)
UNION ALL{SIMILAR_GRAPH}
  AND NOT (SELECT exact FROM gate)"""


def executed_indexes(plan: dict[str, Any]) -> set[str]:
    """The indexes that nodes of an ``EXPLAIN (ANALYZE, FORMAT JSON)`` plan actually scanned
    (a gated branch that did not run is in the plan with no loops)."""
    found: set[str] = set()
    if plan.get("Actual Loops", 1) and "Index Name" in plan:
        found.add(str(plan["Index Name"]))
    for child in plan.get("Plans", []):
        found |= executed_indexes(child)
    return found


class PgVectorIndex:
    name = "pgvector"

    def __init__(self, engine: AsyncEngine, url: str, timeout: float) -> None:
        self.engine = engine
        # Reads are one statement each: no BEGIN and COMMIT round trips around them.
        self.reads = engine.execution_options(isolation_level="AUTOCOMMIT")
        self.url = url
        self.timeout = timeout

    async def _run(
        self,
        statement: str,
        params: dict[str, Any] | list[dict[str, Any]],
        *,
        write: bool = False,
    ) -> list[Any]:
        """One statement, bounded (a write in its own transaction); rows if it returns any."""
        engine = self.engine if write else self.reads
        try:
            async with asyncio.timeout(self.timeout), engine.begin() as conn:
                result = await conn.execute(text(statement), params)
                return list(result) if result.returns_rows else []
        except (OSError, TimeoutError, asyncpg.PostgresConnectionError) as exc:
            raise StoreUnavailable("pgvector", type(exc).__name__) from exc

    async def _read(self, statement: str, params: dict[str, Any]) -> list[reads.Record]:
        """A search's rows, straight through asyncpg like every loader read
        (app/stores/postgres/reads.py): the statement text never changes, so it is prepared
        once per connection, and no SQLAlchemy compilation, transaction or ``Row`` is paid
        per search. That was more than half of a dashboard page's similar-campaigns CPU."""
        sql, names = _positional(statement)
        try:
            async with asyncio.timeout(self.timeout):
                return await reads.fetch(self.engine, sql, *(params[name] for name in names))
        except Exception as exc:
            if is_store_failure(exc):
                raise StoreUnavailable("pgvector", type(exc).__name__) from exc
            raise

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
        await self._run(statement, rows, write=True)

    async def delete(self, tenant_id: UUID, kind: VectorKind, row_ids: Sequence[UUID]) -> None:
        if row_ids:
            await self._run(
                "DELETE FROM vector_item WHERE tenant_id = :tenant AND kind = :kind "
                "AND row_id = ANY(:rows)",
                {"tenant": tenant_id, "kind": kind.value, "rows": list(row_ids)},
                write=True,
            )

    async def search(self, tenant_id: UUID, query: VectorQuery) -> list[VectorHit]:
        return (await self.search_many(tenant_id, [query]))[0]

    async def search_many(
        self, tenant_id: UUID, queries: Sequence[VectorQuery]
    ) -> list[list[VectorHit]]:
        """One statement per group of queries that share kinds, limit and whether they are
        scoped to an owner: usually one."""
        results: list[list[VectorHit]] = [[] for _ in queries]
        groups: dict[tuple[tuple[VectorKind, ...], int, bool], list[int]] = defaultdict(list)
        for index, query in enumerate(queries):
            groups[(query.kinds, query.limit, query.owner_id is not None)].append(index)
        for (kinds, limit, scoped), members in groups.items():
            statement, params = _search_statement(
                tenant_id, [queries[i] for i in members], kinds, limit, scoped
            )
            for row in await self._read(statement, params):
                results[members[row["ord"] - 1]].append(
                    VectorHit(VectorKind(row["kind"]), row["row_id"], float(row["score"]))
                )
        return [_best(hits, queries[i].limit) for i, hits in enumerate(results)]

    async def similar_to(
        self,
        tenant_id: UUID,
        kind: VectorKind,
        row_ids: Sequence[UUID],
        kinds: tuple[VectorKind, ...],
        limit: int,
    ) -> dict[UUID, list[VectorHit]]:
        rows = await self._read(
            SIMILAR,
            {
                "tenant": tenant_id,
                "kind": kind.value,
                "rows": list(row_ids),
                "kinds": [k.value for k in kinds],
                "fetch": limit,
            },
        )
        found: dict[UUID, list[VectorHit]] = defaultdict(list)
        for row in rows:
            found[row["source"]].append(
                VectorHit(VectorKind(row["kind"]), row["row_id"], float(row["score"]))
            )
        return {source: _best(hits, limit) for source, hits in found.items()}

    async def explain(self, tenant_id: UUID, query: VectorQuery) -> dict[str, Any]:
        """``EXPLAIN (ANALYZE, FORMAT JSON)`` of the statement ``search`` runs for ``query``, with
        the same settings: its top plan node. For the benchmark and the tests, which check
        which index a search used (``executed_indexes``)."""
        statement, params = _search_statement(
            tenant_id, [query], query.kinds, query.limit, query.owner_id is not None
        )
        rows = await self._run("EXPLAIN (ANALYZE, FORMAT JSON) " + statement, params)
        document = rows[0][0]
        plan: dict[str, Any] = document[0]["Plan"]
        return plan

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


def _search_statement(
    tenant_id: UUID,
    queries: Sequence[VectorQuery],
    kinds: tuple[VectorKind, ...],
    limit: int,
    scoped: bool,
) -> tuple[str, dict[str, Any]]:
    """The statement and parameters for queries that share kinds, limit and scoping."""
    params: dict[str, Any] = {
        "vectors": [Vector(list(q.vector)) for q in queries],
        "excludes": [q.exclude_row_id for q in queries],
        "tenant": tenant_id,
        "kinds": [k.value for k in kinds],
    }
    if scoped:
        return SEARCH_OWNED, params | {"owners": [q.owner_id for q in queries], "limit": limit}
    return SEARCH, params | {"fetch": limit * CANDIDATES}


# A `:name` placeholder; not the second colon of a `::type` cast, nor inside a word.
_PLACEHOLDER = re.compile(r"(?<![:\w]):([a-z_]+)")


@cache
def _positional(statement: str) -> tuple[str, tuple[str, ...]]:
    """``statement`` with asyncpg's ``$n`` for each ``:name`` (a name used twice is one
    parameter), and the names in ``$n`` order. The statements are this module's constants,
    so each is converted once."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    return _PLACEHOLDER.sub(number, statement), tuple(names)


def _best(hits: list[VectorHit], limit: int) -> list[VectorHit]:
    """The ``limit`` closest, best first: the HNSW path returns more candidates than wanted,
    and with relaxed ordering not strictly in order."""
    return sorted(hits, key=lambda hit: hit.score, reverse=True)[:limit]


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
        # connection, after the schema exists; the search settings likewise.
        dbapi_connection.run_async(register_vector)
        dbapi_connection.run_async(lambda conn: conn.execute(SESSION_SETTINGS))

    index = PgVectorIndex(engine, url, timeout)
    try:
        yield index
    finally:
        await index.close()
