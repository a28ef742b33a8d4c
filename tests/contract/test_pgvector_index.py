"""The vector index contract on pgvector (always the embedded PostgreSQL unless
TEST_PGVECTOR_URL names another server with the extension), and the plans the adapter relies
on for tenants of every size (docs/decisions/0016-pgvector-search-at-scale.md)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import pytest_asyncio
from numpy.typing import NDArray
from pgvector import Vector
from sqlalchemy import text

from app.errors import StoreUnavailable
from app.stores.vectors import pgvector as adapter
from app.stores.vectors.pgvector import PgVectorIndex, executed_indexes, open_pgvector
from app.stores.vectors.port import DIMENSIONS, VectorKind, VectorQuery, VectorRecord
from tests.contract.vector_contract import VectorIndexContract
from tests.engines import create_database, drop_database, has_extension

F32 = NDArray[np.float32]


@pytest_asyncio.fixture(scope="module")
async def index(pgvector_url: str) -> AsyncIterator[PgVectorIndex]:
    async with open_pgvector(pgvector_url, timeout=10) as opened:
        yield opened


class TestPgVector(VectorIndexContract):
    pass


async def test_a_server_without_the_extension_is_refused_in_one_line(pg_server_url: str) -> None:
    if await has_extension(pg_server_url, "vector"):
        pytest.skip("this server has pgvector; nothing to refuse")
    url = await create_database(pg_server_url, prefix="chimera_novector")
    try:
        with pytest.raises(StoreUnavailable, match="has no 'vector' extension") as raised:
            async with open_pgvector(url, timeout=5):
                pass
        assert "\n" not in raised.value.message
    finally:
        await drop_database(url)


# A crowded index of its own (the shared one's size depends on which tests ran): one tenant
# holding most of the rows, many small ones, and one tiny one. Above the exact-ranking cutoff
# (EXACT_FLOOR rows at this size) a tenant walks the HNSW graph; below it, it is ranked
# exactly.
BIG = adapter.EXACT_FLOOR + 600
SMALL_TENANTS, SMALL = 40, 25
TINY = 12
PER_OWNER = 50


def clustered(count: int, rng: np.random.Generator, centres: F32) -> F32:
    """Unit vectors around a few centres, the way sentence embeddings bunch by topic."""
    picked = centres[rng.integers(0, len(centres), count)]
    noise = rng.standard_normal((count, DIMENSIONS)).astype(np.float32) * np.float32(0.05)
    vectors = picked + noise
    out: F32 = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    return out


@dataclass
class Rows:
    tenant: uuid.UUID
    ids: list[uuid.UUID]
    owners: list[uuid.UUID | None]
    vectors: F32

    def exact(self, query: F32, k: int, among: list[int] | None = None) -> list[uuid.UUID]:
        """The exact top ``k`` ids, best first (cosine similarity of unit vectors)."""
        picked = among if among is not None else list(range(len(self.ids)))
        scores = self.vectors[picked] @ query
        return [self.ids[picked[int(i)]] for i in np.argsort(-scores)[:k]]


@dataclass
class Crowded:
    index: PgVectorIndex
    big: Rows
    tiny: Rows
    centres: F32


def rows_of(count: int, rng: np.random.Generator, centres: F32, owners: int = 0) -> Rows:
    owner_ids = [uuid.uuid4() for _ in range(owners)]
    return Rows(
        tenant=uuid.uuid4(),
        ids=[uuid.uuid4() for _ in range(count)],
        owners=[owner_ids[i % owners] if owners else None for i in range(count)],
        vectors=clustered(count, rng, centres),
    )


def as_records(rows: Rows) -> list[VectorRecord]:
    return [
        VectorRecord(
            kind=VectorKind.MEMORY,
            row_id=row_id,
            vector=vector,
            text="",
            owner_id=owner,
            content_hash="h",
        )
        for row_id, owner, vector in zip(rows.ids, rows.owners, rows.vectors.tolist(), strict=True)
    ]


@pytest_asyncio.fixture(scope="module")
async def crowded(pgvector_url: str) -> AsyncIterator[Crowded]:
    rng = np.random.default_rng(16)
    centres = clustered(30, rng, rng.standard_normal((30, DIMENSIONS)).astype(np.float32))
    big = rows_of(BIG, rng, centres, owners=BIG // PER_OWNER)
    tiny = rows_of(TINY, rng, centres)
    small = [rows_of(SMALL, rng, centres) for _ in range(SMALL_TENANTS)]
    url = await create_database(pgvector_url, prefix="chimera_vectors_crowded")
    try:
        async with open_pgvector(url, timeout=30) as opened:
            # Loaded without the graph and indexed in one build (seconds, not a minute of
            # one-by-one inserts); ANALYZE gives the planner and the cutoff their row counts.
            async with opened.engine.begin() as conn:
                await conn.execute(text(f"DROP INDEX {adapter.HNSW_INDEX}"))
            for rows in [big, tiny, *small]:
                await opened.upsert(rows.tenant, as_records(rows))
            async with opened.engine.begin() as conn:
                for statement in adapter.SCHEMA:
                    await conn.execute(text(statement))
                await conn.execute(text("ANALYZE vector_item"))
            yield Crowded(opened, big, tiny, centres)
    finally:
        await drop_database(url)


def near(crowded: Crowded, seed: int) -> F32:
    """A query vector near one of the data's centres, like a held-out sentence."""
    vector: F32 = clustered(1, np.random.default_rng(seed), crowded.centres)[0]
    return vector


def scanned(plan: dict[str, Any]) -> Iterator[str]:
    """The node types that read vector_item and ran."""
    if plan.get("Actual Loops", 1) and plan.get("Relation Name") == "vector_item":
        yield str(plan["Node Type"])
    for child in plan.get("Plans", []):
        yield from scanned(child)


def index_conditions(plan: dict[str, Any]) -> Iterator[str]:
    """The index conditions of the nodes that ran."""
    if plan.get("Actual Loops", 1) and "Index Cond" in plan:
        yield str(plan["Index Cond"])
    for child in plan.get("Plans", []):
        yield from index_conditions(child)


async def test_a_tenant_holding_most_rows_walks_the_hnsw_index(crowded: Crowded) -> None:
    vector = near(crowded, 1)
    query = VectorQuery(vector.tolist(), (VectorKind.MEMORY,), limit=10)
    plan = await crowded.index.explain(crowded.big.tenant, query)
    assert adapter.HNSW_INDEX in executed_indexes(plan)
    assert "Seq Scan" not in set(scanned(plan))
    hits = await crowded.index.search(crowded.big.tenant, query)
    assert len(hits) == 10
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    found = len({h.row_id for h in hits} & set(crowded.big.exact(vector, 10)))
    assert found >= 8, f"recall@10 {found / 10} on a small graph"


async def test_a_tiny_tenant_among_many_gets_its_exact_top_hits(crowded: Crowded) -> None:
    vector = near(crowded, 2)
    query = VectorQuery(vector.tolist(), (VectorKind.MEMORY,), limit=10)
    plan = await crowded.index.explain(crowded.tiny.tenant, query)
    assert adapter.HNSW_INDEX not in executed_indexes(plan)
    assert "Seq Scan" not in set(scanned(plan))
    hits = await crowded.index.search(crowded.tiny.tenant, query)
    assert [h.row_id for h in hits] == crowded.tiny.exact(vector, 10)


async def test_the_whole_of_a_tiny_tenant_comes_back_when_the_limit_is_larger(
    crowded: Crowded,
) -> None:
    vector = near(crowded, 3)
    hits = await crowded.index.search(
        crowded.tiny.tenant, VectorQuery(vector.tolist(), (VectorKind.MEMORY,), limit=50)
    )
    assert [h.row_id for h in hits] == crowded.tiny.exact(vector, TINY)


async def generic_plan(index: PgVectorIndex, tenant: uuid.UUID, vector: F32) -> dict[str, Any]:
    """The plan the adapter's searches run: SESSION_SETTINGS make it the generic plan, which an
    EXPLAIN with parameters would not show (it plans for their values), so this prepares the
    statement and explains an EXECUTE of it with literal values, on one of the adapter's own
    connections."""
    statement = adapter.SEARCH
    for number, name in enumerate(("vectors", "excludes", "tenant", "kinds", "fetch"), 1):
        statement = statement.replace(f":{name}", f"${number}")
    literals = (
        f"ARRAY['{Vector(vector.tolist()).to_text()}']::vector[], ARRAY[NULL]::uuid[], "
        f"'{tenant}'::uuid, ARRAY['memory'], {10 * adapter.CANDIDATES}"
    )
    async with index.reads.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        assert raw is not None
        await raw.execute(f"PREPARE generic AS {statement}")
        try:
            found = await raw.fetchval(
                f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE generic({literals})"
            )
        finally:
            await raw.execute("DEALLOCATE generic")
    document = json.loads(found) if isinstance(found, str) else found
    plan: dict[str, Any] = document[0]["Plan"]
    return plan


async def test_one_generic_plan_serves_big_and_tiny_tenants(crowded: Crowded) -> None:
    big = await generic_plan(crowded.index, crowded.big.tenant, near(crowded, 7))
    assert adapter.HNSW_INDEX in executed_indexes(big)
    tiny = await generic_plan(crowded.index, crowded.tiny.tenant, near(crowded, 8))
    assert adapter.HNSW_INDEX not in executed_indexes(tiny)
    assert "Seq Scan" not in {*scanned(big), *scanned(tiny)}


async def test_an_owner_scoped_search_reads_only_the_owners_rows(crowded: Crowded) -> None:
    big = crowded.big
    owner = big.owners[0]
    assert owner is not None
    mine = [i for i, o in enumerate(big.owners) if o == owner]
    vector = near(crowded, 4)
    query = VectorQuery(vector.tolist(), (VectorKind.MEMORY,), limit=10, owner_id=owner)
    plan = await crowded.index.explain(big.tenant, query)
    assert executed_indexes(plan) == {"vector_item_owner"}
    # The owner narrows the index scan itself, not a filter over the tenant's rows.
    assert any("owner_id" in condition for condition in index_conditions(plan))
    assert "Seq Scan" not in set(scanned(plan))
    hits = await crowded.index.search(big.tenant, query)
    assert [h.row_id for h in hits] == big.exact(vector, 10, among=mine)


async def test_one_batch_mixes_tenant_wide_and_owner_scoped_searches(crowded: Crowded) -> None:
    big = crowded.big
    owner = big.owners[1]
    mine = [i for i, o in enumerate(big.owners) if o == owner]
    vectors = [near(crowded, 5), near(crowded, 6)]
    results = await crowded.index.search_many(
        big.tenant,
        [
            VectorQuery(vectors[0].tolist(), (VectorKind.MEMORY,), limit=3, owner_id=owner),
            VectorQuery(vectors[1].tolist(), (VectorKind.MEMORY,), limit=5),
        ],
    )
    assert [h.row_id for h in results[0]] == big.exact(vectors[0], 3, among=mine)
    assert len(results[1]) == 5
    assert all(h.row_id in set(big.ids) for h in results[1])


async def test_similar_to_in_a_big_tenant_returns_the_limit_without_the_source(
    crowded: Crowded,
) -> None:
    big = crowded.big
    sources = big.ids[:3]
    found = await crowded.index.similar_to(
        big.tenant, VectorKind.MEMORY, sources, (VectorKind.MEMORY,), 10
    )
    assert set(found) == set(sources)
    for position, source in enumerate(sources):
        hits = found[source]
        assert len(hits) == 10
        assert source not in {h.row_id for h in hits}
        exact = big.exact(big.vectors[position], 11)[1:]  # the first is the source itself
        assert len({h.row_id for h in hits} & set(exact)) >= 8
