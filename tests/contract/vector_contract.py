"""The contract every VectorIndex adapter passes: pgvector here, Weaviate through its fakes
and, when WEAVIATE_URL is set, a real server. Subclasses provide the ``index`` fixture."""

from __future__ import annotations

import math
import random
import uuid

from app.stores.vectors.port import DIMENSIONS, VectorIndex, VectorKind, VectorQuery, VectorRecord


def unit(seed: int, near: list[float] | None = None, jitter: float = 0.0) -> list[float]:
    rng = random.Random(seed)
    base = near or [rng.gauss(0, 1) for _ in range(DIMENSIONS)]
    values = [v + rng.gauss(0, jitter) for v in base] if near else base
    norm = math.sqrt(sum(v * v for v in values))
    return [v / norm for v in values]


def record(
    kind: VectorKind,
    vector: list[float],
    owner: uuid.UUID | None = None,
    text: str = "",
    row_id: uuid.UUID | None = None,
) -> VectorRecord:
    return VectorRecord(
        kind=kind,
        row_id=row_id or uuid.uuid4(),
        vector=vector,
        text=text,
        owner_id=owner,
        content_hash=f"h-{text}",
    )


class VectorIndexContract:
    async def test_search_ranks_by_similarity_within_the_tenant(self, index: VectorIndex) -> None:
        tenant = uuid.uuid4()
        anchor = unit(1)
        close, mid, far = (
            record(VectorKind.CAMPAIGN, unit(2, anchor, j)) for j in (0.002, 0.01, 5)
        )
        await index.upsert(tenant, [far, close, mid])
        hits = await index.search(tenant, VectorQuery(anchor, (VectorKind.CAMPAIGN,), limit=2))
        assert [h.row_id for h in hits] == [close.row_id, mid.row_id]
        assert hits[0].score > hits[1].score
        assert 0.99 < hits[0].score <= 1.0001

    async def test_another_tenant_never_sees_the_objects(self, index: VectorIndex) -> None:
        mine, theirs = uuid.uuid4(), uuid.uuid4()
        vector = unit(3)
        await index.upsert(mine, [record(VectorKind.AGENT, vector)])
        assert await index.search(theirs, VectorQuery(vector, (VectorKind.AGENT,), 10)) == []
        assert await index.entries(theirs, VectorKind.AGENT) == []

    async def test_upserting_a_row_again_replaces_it(self, index: VectorIndex) -> None:
        tenant, row_id = uuid.uuid4(), uuid.uuid4()
        await index.upsert(tenant, [record(VectorKind.CAMPAIGN, unit(4), text="v1", row_id=row_id)])
        await index.upsert(tenant, [record(VectorKind.CAMPAIGN, unit(5), text="v2", row_id=row_id)])
        entries = await index.entries(tenant, VectorKind.CAMPAIGN)
        assert [(e.row_id, e.content_hash) for e in entries] == [(row_id, "h-v2")]
        hits = await index.search(tenant, VectorQuery(unit(5), (VectorKind.CAMPAIGN,), 5))
        assert hits[0].row_id == row_id
        assert hits[0].score > 0.99

    async def test_kinds_owner_and_exclusion_filter_the_hits(self, index: VectorIndex) -> None:
        tenant, agent_a, agent_b = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        vector = unit(6)
        memory_a = record(VectorKind.MEMORY, unit(7, vector, 0.01), owner=agent_a)
        memory_b = record(VectorKind.MEMORY, unit(8, vector, 0.01), owner=agent_b)
        campaign = record(VectorKind.CAMPAIGN, unit(9, vector, 0.01))
        await index.upsert(tenant, [memory_a, memory_b, campaign])
        only_a = await index.search(
            tenant, VectorQuery(vector, (VectorKind.MEMORY,), 10, owner_id=agent_a)
        )
        assert [h.row_id for h in only_a] == [memory_a.row_id]
        both = await index.search(
            tenant,
            VectorQuery(
                vector, (VectorKind.MEMORY, VectorKind.CAMPAIGN), 10, exclude_row_id=campaign.row_id
            ),
        )
        assert {h.row_id for h in both} == {memory_a.row_id, memory_b.row_id}
        assert {h.kind for h in both} == {VectorKind.MEMORY}

    async def test_delete_removes_and_missing_rows_are_not_an_error(
        self, index: VectorIndex
    ) -> None:
        tenant = uuid.uuid4()
        kept, gone = record(VectorKind.MEDIA, unit(10)), record(VectorKind.MEDIA, unit(11))
        await index.upsert(tenant, [kept, gone])
        await index.delete(tenant, VectorKind.MEDIA, [gone.row_id, uuid.uuid4()])
        assert [e.row_id for e in await index.entries(tenant, VectorKind.MEDIA)] == [kept.row_id]

    async def test_many_searches_come_back_in_order(self, index: VectorIndex) -> None:
        tenant = uuid.uuid4()
        records = [record(VectorKind.CAMPAIGN, unit(20 + i)) for i in range(5)]
        await index.upsert(tenant, records)
        queries = [VectorQuery(r.vector, (VectorKind.CAMPAIGN,), 1) for r in reversed(records)]
        results = await index.search_many(tenant, queries)
        assert [hits[0].row_id for hits in results] == [r.row_id for r in reversed(records)]

    async def test_similar_to_excludes_the_source_and_skips_unindexed_rows(
        self, index: VectorIndex
    ) -> None:
        tenant = uuid.uuid4()
        anchor = unit(30)
        source, twin, other = (
            record(VectorKind.CAMPAIGN, unit(31 + i, anchor, j))
            for i, j in enumerate((0.01, 0.02, 5))
        )
        await index.upsert(tenant, [source, twin, other])
        missing = uuid.uuid4()
        found = await index.similar_to(
            tenant, VectorKind.CAMPAIGN, [source.row_id, missing], (VectorKind.CAMPAIGN,), 1
        )
        assert set(found) == {source.row_id}
        assert [h.row_id for h in found[source.row_id]] == [twin.row_id]

    async def test_tenants_lists_who_has_vectors(self, index: VectorIndex) -> None:
        tenant = uuid.uuid4()
        await index.upsert(tenant, [record(VectorKind.AGENT, unit(40))])
        assert tenant in await index.tenants()
