"""The Weaviate adapter, driven through the real weaviate-client against in-process fakes.

The fakes (tests/contract/weaviate_fakes.py) are a grpc server with the client's generated
WeaviateServicer and a health servicer, plus pytest-httpserver for REST, as in weaviate-client's
own mock_tests. Tests assert on what the fake received (tenant, vector, limit, filters, hybrid
text and alpha) and on how its answers and faults map to our results and errors. The last test
runs the same basic contract against a real Weaviate when WEAVIATE_URL is set.
"""

from __future__ import annotations

import asyncio
import math
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager

import grpc
import pytest
import pytest_asyncio
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Span, SpanKind, StatusCode
from pytest_httpserver import HTTPServer
from weaviate.proto.v1 import base_pb2

from app.errors import StoreUnavailable
from app.stores.vectors import weaviate as adapter
from app.stores.vectors.port import (
    DIMENSIONS,
    IndexedEntry,
    VectorKind,
    VectorQuery,
    VectorRecord,
    object_uuid,
)
from app.stores.vectors.weaviate import COLLECTIONS, WeaviateVectorIndex, open_weaviate_index
from app.telemetry import Telemetry, instrumented
from tests.contract.vector_contract import VectorIndexContract
from tests.contract.weaviate_fakes import (
    FakeWeaviate,
    hybrid_alpha,
    hybrid_vector,
    near_vector_of,
    object_vector_of,
)

TIMEOUT = 5.0
Op = base_pb2.Filters.Operator


def vec(*head: float) -> list[float]:
    """A DIMENSIONS-long vector starting with ``head`` (zeros after)."""
    return [*head, *([0.0] * (DIMENSIONS - len(head)))]


def close_to(a: list[float], b: list[float]) -> bool:
    return len(a) == len(b) and all(
        math.isclose(x, y, abs_tol=1e-6) for x, y in zip(a, b, strict=True)
    )


# -- fixtures -------------------------------------------------------------------------------


@pytest.fixture
def fake(httpserver: HTTPServer) -> Iterator[FakeWeaviate]:
    fake = FakeWeaviate()
    fake.install(httpserver)
    fake.start_grpc()
    yield fake
    fake.stop()


@asynccontextmanager
async def connected(
    fake: FakeWeaviate, httpserver: HTTPServer, timeout: float = TIMEOUT
) -> AsyncIterator[WeaviateVectorIndex]:
    url = httpserver.url_for("/").rstrip("/")
    async with open_weaviate_index(url, timeout, grpc_port=fake.grpc_port) as index:
        await index.ensure_ready()
        fake.reset_log()
        yield index


@pytest_asyncio.fixture
async def index(fake: FakeWeaviate, httpserver: HTTPServer) -> AsyncIterator[WeaviateVectorIndex]:
    async with connected(fake, httpserver) as index:
        yield index


def campaign(row: uuid.UUID, vector: list[float], text: str = "", digest: str = "") -> VectorRecord:
    return VectorRecord(VectorKind.CAMPAIGN, row, vector, text, content_hash=digest)


# -- the basic contract, shared with the real-server test -------------------------------------


async def basic_contract(index: WeaviateVectorIndex) -> None:
    tenant, other = uuid.uuid4(), uuid.uuid4()
    near, middle, far = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await index.upsert(
        tenant,
        [
            campaign(near, vec(1.0, 0.1), "summer sale", "h1"),
            campaign(middle, vec(1.0, 1.0), "winter sale", "h2"),
            campaign(far, vec(0.0, 1.0), "spring launch", "h3"),
        ],
    )
    hits = await index.search(tenant, VectorQuery(vec(1.0, 0.0), (VectorKind.CAMPAIGN,), 3))
    assert [h.row_id for h in hits] == [near, middle, far]
    assert all(h.kind is VectorKind.CAMPAIGN for h in hits)
    assert hits[0].score == pytest.approx(1 / math.sqrt(1.01), abs=1e-4)
    assert hits[1].score == pytest.approx(1 / math.sqrt(2), abs=1e-4)
    assert hits[2].score == pytest.approx(0.0, abs=1e-4)

    top = await index.search(tenant, VectorQuery(vec(1.0, 0.0), (VectorKind.CAMPAIGN,), 1))
    assert [h.row_id for h in top] == [near]
    assert await index.search(other, VectorQuery(vec(1.0), (VectorKind.CAMPAIGN,), 3)) == []

    await index.upsert(tenant, [campaign(near, vec(0.0, 1.0), "summer sale, again", "h1b")])
    entries = await index.entries(tenant, VectorKind.CAMPAIGN)
    assert sorted(entries, key=lambda e: e.content_hash) == [
        IndexedEntry(near, "h1b"),
        IndexedEntry(middle, "h2"),
        IndexedEntry(far, "h3"),
    ]

    similar = await index.similar_to(
        tenant, VectorKind.CAMPAIGN, [far, uuid.uuid4()], (VectorKind.CAMPAIGN,), 1
    )
    assert list(similar) == [far]  # a row that is not indexed is absent
    assert [h.row_id for h in similar[far]] == [near]  # near now points where far does
    assert similar[far][0].score == pytest.approx(1.0, abs=1e-4)

    await index.delete(tenant, VectorKind.CAMPAIGN, [near, uuid.uuid4()])
    hits = await index.search(tenant, VectorQuery(vec(0.0, 1.0), (VectorKind.CAMPAIGN,), 10))
    assert [h.row_id for h in hits] == [far, middle]
    assert tenant in await index.tenants()
    assert other not in await index.tenants()
    assert (await index.ping()).startswith("Weaviate ")


async def test_basic_contract_against_the_fake(index: WeaviateVectorIndex) -> None:
    await basic_contract(index)


class TestWeaviateContractOnFakes(VectorIndexContract):
    """The contract every adapter passes (pgvector too), here through the fakes; ``index``
    is the module's fixture."""


# -- what goes over the wire --------------------------------------------------------------------


async def test_ensure_ready_creates_four_multi_tenant_collections_once(
    fake: FakeWeaviate, index: WeaviateVectorIndex
) -> None:
    assert set(fake.schemas) == set(COLLECTIONS.values())
    for schema in fake.schemas.values():
        assert schema["multiTenancyConfig"] == {
            "enabled": True,
            "autoTenantCreation": False,
            "autoTenantActivation": False,
        }
        assert schema["vectorConfig"]["default"]["vectorizer"] == {"none": {}}
        assert schema["vectorConfig"]["default"]["vectorIndexType"] == "hnsw"
        assert schema["vectorConfig"]["default"]["vectorIndexConfig"]["distance"] == "cosine"
        types = {p["name"]: p["dataType"] for p in schema["properties"]}
        assert types == {
            "row_id": ["uuid"],
            "owner_id": ["uuid"],
            "text": ["text"],
            "content_hash": ["text"],
        }
    await index.ensure_ready()  # idempotent: looks, creates nothing
    assert [c.method for c in fake.rest_requests] == ["GET"] * 4


async def test_upsert_creates_the_tenant_then_sends_one_batch(
    fake: FakeWeaviate, index: WeaviateVectorIndex
) -> None:
    tenant, row, owner = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    record = VectorRecord(
        VectorKind.MEDIA, row, vec(0.25, 0.5, 0.75), "cat.png a cat", owner, "digest"
    )
    await index.upsert(tenant, [record])

    posts = [c for c in fake.rest_requests if c.method == "POST"]
    assert [(c.path, c.body) for c in posts] == [
        ("/v1/schema/ChimeraMedia/tenants", [{"name": str(tenant), "activityStatus": "HOT"}])
    ]
    (batch,) = fake.batches()
    (sent,) = batch.objects
    assert sent.collection == "ChimeraMedia"
    assert sent.tenant == str(tenant)
    assert uuid.UUID(sent.uuid) == object_uuid(tenant, VectorKind.MEDIA, row)
    assert close_to(object_vector_of(sent), vec(0.25, 0.5, 0.75))
    assert dict(sent.properties.non_ref_properties) == {
        "row_id": str(row),
        "owner_id": str(owner),
        "text": "cat.png a cat",
        "content_hash": "digest",
    }

    # The tenant is remembered: a second write neither checks nor creates it again.
    fake.reset_log()
    await index.upsert(tenant, [record])
    assert fake.rest_requests == []
    assert fake.grpc_methods() == ["BatchObjects"]


async def test_search_request_carries_tenant_vector_limit_and_filters(
    fake: FakeWeaviate, index: WeaviateVectorIndex
) -> None:
    tenant, owner, other_owner = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    rows = [uuid.uuid4() for _ in range(4)]
    await index.upsert(
        tenant,
        [
            VectorRecord(VectorKind.MEMORY, rows[0], vec(1.0), "a", owner),
            VectorRecord(VectorKind.MEMORY, rows[1], vec(1.0, 0.2), "b", owner),
            VectorRecord(VectorKind.MEMORY, rows[2], vec(1.0, 0.4), "c", owner),
            VectorRecord(VectorKind.MEMORY, rows[3], vec(1.0), "d", other_owner),
        ],
    )
    fake.reset_log()
    query = VectorQuery(
        vec(1.0, 0.1), (VectorKind.MEMORY,), 2, owner_id=owner, exclude_row_id=rows[0]
    )
    hits = await index.search(tenant, query)
    assert [h.row_id for h in hits] == [rows[1], rows[2]]

    (request,) = fake.searches()
    assert request.collection == "ChimeraMemory"
    assert request.tenant == str(tenant)
    assert request.limit == 2
    assert close_to(near_vector_of(request), vec(1.0, 0.1))
    assert list(request.near_vector.targets.target_vectors) == ["default"]
    assert request.metadata.distance
    assert list(request.properties.non_ref_properties) == ["row_id"]
    where = request.filters
    assert where.operator == Op.OPERATOR_AND
    conditions = {(f.target.property, f.operator, f.value_text) for f in where.filters}
    assert conditions == {
        ("owner_id", Op.OPERATOR_EQUAL, str(owner)),
        ("row_id", Op.OPERATOR_NOT_EQUAL, str(rows[0])),
    }


async def test_a_single_filter_is_sent_bare(fake: FakeWeaviate, index: WeaviateVectorIndex) -> None:
    tenant, row = uuid.uuid4(), uuid.uuid4()
    await index.upsert(tenant, [campaign(row, vec(1.0))])
    fake.reset_log()
    assert (
        await index.search(
            tenant, VectorQuery(vec(1.0), (VectorKind.CAMPAIGN,), 5, exclude_row_id=row)
        )
        == []
    )
    (request,) = fake.searches()
    assert request.filters.operator == Op.OPERATOR_NOT_EQUAL
    assert request.filters.target.property == "row_id"

    fake.reset_log()
    assert len(await index.search(tenant, VectorQuery(vec(1.0), (VectorKind.CAMPAIGN,), 5))) == 1
    (request,) = fake.searches()
    assert not request.HasField("filters")


async def test_hybrid_search_sends_text_vector_and_alpha(
    fake: FakeWeaviate, index: WeaviateVectorIndex
) -> None:
    tenant = uuid.uuid4()
    shoes, hats = uuid.uuid4(), uuid.uuid4()
    await index.upsert(
        tenant,
        [
            campaign(shoes, vec(0.0, 1.0), "red shoes for summer"),
            campaign(hats, vec(1.0, 0.0), "blue hats"),
        ],
    )
    fake.reset_log()
    # The vector favours hats; the keywords favour shoes, and win at alpha 0.5.
    hits = await index.search(
        tenant, VectorQuery(vec(1.0, 0.2), (VectorKind.CAMPAIGN,), 5, text="red shoes")
    )
    assert [h.row_id for h in hits] == [shoes, hats]
    assert hits[0].score > hits[1].score > 0

    (request,) = fake.searches()
    assert request.tenant == str(tenant)
    assert request.HasField("hybrid_search")
    assert not request.HasField("near_vector")
    hybrid = request.hybrid_search
    assert hybrid.query == "red shoes"
    assert hybrid_alpha(hybrid) == pytest.approx(adapter.HYBRID_ALPHA)
    assert close_to(hybrid_vector(hybrid), vec(1.0, 0.2))
    assert list(hybrid.properties) == ["text"]
    assert list(hybrid.targets.target_vectors) == ["default"]
    assert request.metadata.score
    assert request.limit == 5


async def test_many_kinds_are_searched_concurrently_and_merged_by_score(
    fake: FakeWeaviate, index: WeaviateVectorIndex
) -> None:
    tenant = uuid.uuid4()
    best_agent, campaign_row, worst_agent = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await index.upsert(
        tenant,
        [
            VectorRecord(VectorKind.AGENT, best_agent, vec(1.0), "agent"),
            VectorRecord(VectorKind.AGENT, worst_agent, vec(0.0, 1.0), "agent"),
            campaign(campaign_row, vec(1.0, 0.5)),
        ],
    )
    fake.reset_log()
    together = fake.rendezvous("Search", 2)
    hits = await index.search(
        tenant, VectorQuery(vec(1.0), (VectorKind.CAMPAIGN, VectorKind.AGENT), 2)
    )
    assert [(h.kind, h.row_id) for h in hits] == [
        (VectorKind.AGENT, best_agent),
        (VectorKind.CAMPAIGN, campaign_row),
    ]
    assert sorted(r.collection for r in fake.searches()) == ["ChimeraAgent", "ChimeraCampaign"]
    assert all(r.limit == 2 for r in fake.searches())
    assert not together.broken, "the two collections were searched one after the other"


async def test_search_many_runs_one_concurrent_batch_in_order(
    fake: FakeWeaviate, index: WeaviateVectorIndex
) -> None:
    tenant = uuid.uuid4()
    rows = [uuid.uuid4() for _ in range(4)]
    await index.upsert(tenant, [campaign(r, vec(*([0.0] * i), 1.0)) for i, r in enumerate(rows)])
    fake.reset_log()
    together = fake.rendezvous("Search", 4)
    queries = [VectorQuery(vec(*([0.0] * i), 1.0), (VectorKind.CAMPAIGN,), 1) for i in range(4)]
    results = await index.search_many(tenant, queries)
    assert [[h.row_id for h in hits] for hits in results] == [[r] for r in rows]
    assert len(fake.searches()) == 4
    assert not together.broken, "the searches ran one after the other"
    assert await index.search_many(tenant, []) == []


async def test_similar_to_reads_the_stored_vectors_then_searches_each_kind(
    fake: FakeWeaviate, index: WeaviateVectorIndex
) -> None:
    tenant = uuid.uuid4()
    a, b, c, agent = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await index.upsert(
        tenant,
        [
            campaign(a, vec(1.0)),
            campaign(b, vec(1.0, 0.3)),
            campaign(c, vec(0.0, 1.0)),
            VectorRecord(VectorKind.AGENT, agent, vec(1.0, 0.1), "agent"),
        ],
    )
    fake.reset_log()
    missing = uuid.uuid4()
    found = await index.similar_to(
        tenant, VectorKind.CAMPAIGN, [a, c, missing], (VectorKind.CAMPAIGN, VectorKind.AGENT), 2
    )
    assert set(found) == {a, c}
    assert [(h.kind, h.row_id) for h in found[a]] == [
        (VectorKind.AGENT, agent),
        (VectorKind.CAMPAIGN, b),
    ]
    assert [h.row_id for h in found[c]] == [b, agent]
    assert all(h.row_id != source for source, hits in found.items() for h in hits)

    fetch, *searches = fake.searches()
    assert fetch.collection == "ChimeraCampaign"
    assert fetch.tenant == str(tenant)
    assert list(fetch.metadata.vectors) == ["default"]
    assert fetch.filters.operator == Op.OPERATOR_CONTAINS_ANY
    assert fetch.filters.target.property == "_id"
    assert set(fetch.filters.value_text_array.values) == {
        str(object_uuid(tenant, VectorKind.CAMPAIGN, r)) for r in (a, c, missing)
    }
    assert len(searches) == 4  # two sources x two kinds, concurrently
    assert all(r.tenant == str(tenant) and r.limit == 2 for r in searches)
    excluded = {(r.collection, r.filters.value_text) for r in searches}
    assert excluded == {
        (name, str(row)) for name in ("ChimeraCampaign", "ChimeraAgent") for row in (a, c)
    }
    assert all(
        r.filters.operator == Op.OPERATOR_NOT_EQUAL and r.filters.target.property == "row_id"
        for r in searches
    )
    assert (
        await index.similar_to(uuid.uuid4(), VectorKind.CAMPAIGN, [a], tuple(VectorKind), 3) == {}
    )
    assert await index.similar_to(tenant, VectorKind.CAMPAIGN, [], tuple(VectorKind), 3) == {}


async def test_similar_to_for_a_page_is_one_fetch_then_one_wave_of_searches(
    fake: FakeWeaviate, index: WeaviateVectorIndex
) -> None:
    """Weaviate's gRPC API takes one query per Search call (its GraphQL API, which could
    alias many, is deprecated), so a page of "similar" rows cannot be one request. What
    the adapter can bound is round trips: the page's stored vectors in one fetch, then
    every row's search in flight together on the client's one HTTP/2 channel. Sending
    them row by row would break the rendezvous."""
    tenant = uuid.uuid4()
    rows = [uuid.uuid4() for _ in range(40)]
    await index.upsert(tenant, [campaign(r, vec(1.0, i / 40)) for i, r in enumerate(rows)])
    fake.reset_log()
    together = fake.rendezvous(
        "Search", len(rows), when=lambda request: request.HasField("near_vector")
    )
    found = await index.similar_to(tenant, VectorKind.CAMPAIGN, rows, (VectorKind.CAMPAIGN,), 3)
    assert not together.broken, "the rows' searches were not in flight together"
    assert set(found) == set(rows)
    assert all(
        len(hits) == 3 and row not in {h.row_id for h in hits} for row, hits in found.items()
    )
    fetches = [r for r in fake.searches() if not r.HasField("near_vector")]
    assert len(fetches) == 1  # the 40 stored vectors, read in one request
    assert len(fake.searches()) == 1 + len(rows)


async def test_tenants_never_see_each_other(fake: FakeWeaviate, index: WeaviateVectorIndex) -> None:
    alice, bob = uuid.uuid4(), uuid.uuid4()
    alice_rows = [uuid.uuid4(), uuid.uuid4()]
    bob_row = uuid.uuid4()
    await index.upsert(alice, [campaign(r, vec(1.0)) for r in alice_rows])
    await index.upsert(bob, [campaign(bob_row, vec(1.0))])
    fake.reset_log()

    hits = await index.search(bob, VectorQuery(vec(1.0), (VectorKind.CAMPAIGN,), 10))
    assert [h.row_id for h in hits] == [bob_row]
    assert await index.entries(bob, VectorKind.CAMPAIGN) == [IndexedEntry(bob_row, "")]
    await index.delete(bob, VectorKind.CAMPAIGN, alice_rows)  # Alice's rows, Bob's call

    named = (
        [r.tenant for r in fake.searches()]
        + [r.tenant for r in fake.deletes()]
        + [v for r in fake.tenant_gets() for v in r.names.values]
    )
    assert named and set(named) == {str(bob)}
    assert len(fake.stored("ChimeraCampaign", str(alice))) == 2  # untouched
    # Object ids are per tenant too: the same row id in two tenants is two objects.
    await index.upsert(bob, [campaign(alice_rows[0], vec(1.0))])
    assert len(fake.stored("ChimeraCampaign", str(alice))) == 2
    assert len(fake.stored("ChimeraCampaign", str(bob))) == 2
    assert sorted(await index.tenants()) == sorted([alice, bob])


async def test_reupserting_a_row_keeps_one_object(
    fake: FakeWeaviate, index: WeaviateVectorIndex
) -> None:
    tenant, row = uuid.uuid4(), uuid.uuid4()
    await index.upsert(tenant, [campaign(row, vec(1.0), "first", "h1")])
    await index.upsert(tenant, [campaign(row, vec(0.0, 1.0), "second", "h2")])
    stored = fake.stored("ChimeraCampaign", str(tenant))
    assert list(stored) == [str(object_uuid(tenant, VectorKind.CAMPAIGN, row))]
    (obj,) = stored.values()
    assert obj.properties["text"] == "second"
    assert close_to(obj.vector, vec(0.0, 1.0))
    assert await index.entries(tenant, VectorKind.CAMPAIGN) == [IndexedEntry(row, "h2")]


async def test_delete_sends_the_object_ids_and_removes(
    fake: FakeWeaviate, index: WeaviateVectorIndex
) -> None:
    tenant = uuid.uuid4()
    keep, drop = uuid.uuid4(), uuid.uuid4()
    await index.upsert(tenant, [campaign(keep, vec(1.0)), campaign(drop, vec(1.0))])
    fake.reset_log()
    await index.delete(tenant, VectorKind.CAMPAIGN, [drop])
    (request,) = fake.deletes()
    assert request.collection == "ChimeraCampaign"
    assert request.tenant == str(tenant)
    assert request.filters.operator == Op.OPERATOR_CONTAINS_ANY
    assert request.filters.target.property == "_id"
    assert list(request.filters.value_text_array.values) == [
        str(object_uuid(tenant, VectorKind.CAMPAIGN, drop))
    ]
    assert [e.row_id for e in await index.entries(tenant, VectorKind.CAMPAIGN)] == [keep]
    await index.delete(tenant, VectorKind.CAMPAIGN, [])  # nothing to do, no call
    assert len(fake.deletes()) == 1


async def test_entries_pages_through_a_tenant(
    fake: FakeWeaviate, index: WeaviateVectorIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(adapter, "PAGE_SIZE", 2)
    tenant = uuid.uuid4()
    rows = [uuid.uuid4() for _ in range(5)]
    await index.upsert(tenant, [campaign(r, vec(1.0), digest=f"h{i}") for i, r in enumerate(rows)])
    fake.reset_log()
    entries = await index.entries(tenant, VectorKind.CAMPAIGN)
    assert sorted(entries, key=lambda e: e.content_hash) == [
        IndexedEntry(r, f"h{i}") for i, r in enumerate(rows)
    ]
    pages = fake.searches()
    assert len(pages) == 3
    assert [p.limit for p in pages] == [2, 2, 2]
    assert pages[0].after == ""
    assert pages[1].after and pages[2].after > pages[1].after
    assert all(p.tenant == str(tenant) for p in pages)
    assert set(pages[0].properties.non_ref_properties) == {"row_id", "content_hash"}


async def test_an_unknown_tenant_reads_as_empty(
    fake: FakeWeaviate, index: WeaviateVectorIndex
) -> None:
    stranger = uuid.uuid4()
    query = VectorQuery(vec(1.0), tuple(VectorKind), 5, text="anything")
    assert await index.search(stranger, query) == []
    assert await index.search_many(stranger, [query, query]) == [[], []]
    assert await index.entries(stranger, VectorKind.AGENT) == []
    await index.delete(stranger, VectorKind.AGENT, [uuid.uuid4()])
    # Only tenant look-ups went out; no search or delete reached a missing tenant.
    assert set(fake.grpc_methods()) == {"TenantsGet"}
    assert {v for r in fake.tenant_gets() for v in r.names.values} == {str(stranger)}
    assert not any(c.method == "POST" for c in fake.rest_requests)  # reads create nothing
    assert await index.tenants() == []


async def test_vectors_of_the_wrong_size_are_refused(index: WeaviateVectorIndex) -> None:
    with pytest.raises(ValueError, match="384"):
        await index.upsert(uuid.uuid4(), [campaign(uuid.uuid4(), [1.0, 0.0])])
    with pytest.raises(ValueError, match="384"):
        await index.search(uuid.uuid4(), VectorQuery([1.0], (VectorKind.AGENT,), 1))


# -- faults ---------------------------------------------------------------------------------


async def test_one_unavailable_search_is_retried_by_the_client(
    fake: FakeWeaviate, index: WeaviateVectorIndex
) -> None:
    # weaviate-client retries gRPC UNAVAILABLE on Search (and BatchObjects, TenantsGet) with
    # exponential backoff: 1 s, then 2 s, 4 s... So a single UNAVAILABLE costs about a second
    # and the caller sees the answer, not an error.
    tenant, row = uuid.uuid4(), uuid.uuid4()
    await index.upsert(tenant, [campaign(row, vec(1.0))])
    fake.reset_log()
    fake.fail_grpc(grpc.StatusCode.UNAVAILABLE, times=1, method="Search")
    started = time.perf_counter()
    hits = await index.search(tenant, VectorQuery(vec(1.0), (VectorKind.CAMPAIGN,), 1))
    assert [h.row_id for h in hits] == [row]
    assert len(fake.searches()) == 2
    assert 0.9 < time.perf_counter() - started < TIMEOUT


async def test_one_unavailable_batch_write_is_retried_by_the_client(
    fake: FakeWeaviate, index: WeaviateVectorIndex
) -> None:
    tenant, row = uuid.uuid4(), uuid.uuid4()
    await index.upsert(tenant, [campaign(row, vec(1.0))])
    fake.reset_log()
    fake.fail_grpc(grpc.StatusCode.UNAVAILABLE, times=1, method="BatchObjects")
    await index.upsert(tenant, [campaign(row, vec(0.0, 1.0), "retried")])
    assert len(fake.batches()) == 2
    (obj,) = fake.stored("ChimeraCampaign", str(tenant)).values()
    assert obj.properties["text"] == "retried"


async def test_an_unavailable_delete_is_not_retried(
    fake: FakeWeaviate, index: WeaviateVectorIndex
) -> None:
    # BatchDelete, unlike Search and BatchObjects, has no retry in the client: one
    # UNAVAILABLE reaches us at once, as StoreUnavailable.
    tenant, row = uuid.uuid4(), uuid.uuid4()
    await index.upsert(tenant, [campaign(row, vec(1.0))])
    fake.reset_log()
    fake.fail_grpc(grpc.StatusCode.UNAVAILABLE, times=1, method="BatchDelete")
    with pytest.raises(StoreUnavailable, match="UNAVAILABLE") as caught:
        await index.delete(tenant, VectorKind.CAMPAIGN, [row])
    assert caught.value.store == "Weaviate"
    assert len(fake.deletes()) == 1
    await index.delete(tenant, VectorKind.CAMPAIGN, [row])  # the next try goes through
    assert fake.stored("ChimeraCampaign", str(tenant)) == {}


@pytest.mark.parametrize("method", ["Search", "BatchObjects", "TenantsGet"])
async def test_persistent_unavailable_is_store_unavailable_within_the_timeout(
    fake: FakeWeaviate, httpserver: HTTPServer, method: str
) -> None:
    timeout = 1.5
    tenant = uuid.uuid4()
    async with connected(fake, httpserver, timeout) as index:
        await index.upsert(tenant, [campaign(uuid.uuid4(), vec(1.0))])
        fake.fail_grpc(grpc.StatusCode.UNAVAILABLE, times=1000, method=method)
        started = time.perf_counter()
        calls: dict[str, Callable[[], Awaitable[object]]] = {
            "BatchObjects": lambda: index.upsert(tenant, [campaign(uuid.uuid4(), vec(1.0))]),
            "TenantsGet": index.tenants,
            "Search": lambda: index.search(
                tenant, VectorQuery(vec(1.0), (VectorKind.CAMPAIGN,), 1)
            ),
        }
        with pytest.raises(StoreUnavailable) as caught:
            await calls[method]()
        elapsed = time.perf_counter() - started
        # The client keeps retrying with growing sleeps; our timeout ends it.
        assert caught.value.store == "Weaviate"
        assert "Weaviate is unavailable" in caught.value.message
        assert "1.5s" in caught.value.message
        assert timeout - 0.1 < elapsed < timeout + 1.0
        assert fake.count(method) >= 1


async def test_deadline_exceeded_is_store_unavailable(
    fake: FakeWeaviate, index: WeaviateVectorIndex
) -> None:
    # DEADLINE_EXCEEDED is not retried by the client: it fails the call at once.
    tenant = uuid.uuid4()
    await index.upsert(tenant, [campaign(uuid.uuid4(), vec(1.0))])
    fake.fail_grpc(grpc.StatusCode.DEADLINE_EXCEEDED, times=1000, method="Search")
    started = time.perf_counter()
    with pytest.raises(
        StoreUnavailable, match=r"Weaviate is unavailable: search: .*DEADLINE_EXCEEDED"
    ):
        await index.search(tenant, VectorQuery(vec(1.0), (VectorKind.CAMPAIGN,), 1))
    assert time.perf_counter() - started < 1.0
    assert len(fake.searches()) == 1


async def test_a_server_slower_than_the_timeout_is_store_unavailable(
    fake: FakeWeaviate, httpserver: HTTPServer
) -> None:
    timeout = 1.0
    tenant = uuid.uuid4()
    async with connected(fake, httpserver, timeout) as index:
        await index.upsert(tenant, [campaign(uuid.uuid4(), vec(1.0))])
        fake.fail_grpc(None, times=1, method="Search", delay=3.0)  # would answer, too late
        started = time.perf_counter()
        with pytest.raises(StoreUnavailable):
            await index.search(tenant, VectorQuery(vec(1.0), (VectorKind.CAMPAIGN,), 1))
        assert time.perf_counter() - started < timeout + 0.5


async def test_a_failed_search_cancels_the_rest_of_the_batch(
    fake: FakeWeaviate, index: WeaviateVectorIndex
) -> None:
    tenant = uuid.uuid4()
    await index.upsert(tenant, [campaign(uuid.uuid4(), vec(1.0))])
    fake.fail_grpc(grpc.StatusCode.INTERNAL, times=1, method="Search")
    query = VectorQuery(vec(1.0), (VectorKind.CAMPAIGN,), 1)
    with pytest.raises(StoreUnavailable, match=r"INTERNAL|injected"):
        await index.search_many(tenant, [query, query, query])
    assert len(await index.search_many(tenant, [query, query])) == 2  # the client still works


async def test_per_object_write_errors_are_store_unavailable(
    fake: FakeWeaviate, index: WeaviateVectorIndex
) -> None:
    tenant = uuid.uuid4()
    await index.upsert(tenant, [campaign(uuid.uuid4(), vec(1.0))])
    fake.tenants["ChimeraCampaign"].discard(str(tenant))  # removed behind our back
    with pytest.raises(StoreUnavailable, match="tenant not found"):
        await index.upsert(tenant, [campaign(uuid.uuid4(), vec(1.0))])


async def test_rest_errors_on_schema_and_tenant_calls_are_store_unavailable(
    fake: FakeWeaviate, index: WeaviateVectorIndex
) -> None:
    fake.schemas.pop("ChimeraAgent")
    fake.fail_rest(500, times=1, path="/v1/schema")
    with pytest.raises(StoreUnavailable, match="create collections: UnexpectedStatusCodeError"):
        await index.ensure_ready()
    await index.ensure_ready()
    assert "ChimeraAgent" in fake.schemas

    fake.fail_rest(503, times=1, path="/v1/schema/ChimeraAgent/tenants")
    with pytest.raises(StoreUnavailable, match="503"):
        await index.upsert(
            uuid.uuid4(), [VectorRecord(VectorKind.AGENT, uuid.uuid4(), vec(1.0), "")]
        )


async def test_ping_reports_version_and_maps_a_down_server(
    fake: FakeWeaviate, index: WeaviateVectorIndex
) -> None:
    description = await index.ping()
    assert description.startswith("Weaviate 1.33.0 at http://")
    fake.fail_rest(503, times=1, path="/v1/meta")
    with pytest.raises(StoreUnavailable, match="Weaviate is unavailable: meta"):
        await index.ping()
    fake.fail_rest(503, times=1, path="/v1/.well-known/ready")
    with pytest.raises(StoreUnavailable, match="not ready"):
        await index.ping()
    fake.fail_grpc(grpc.StatusCode.UNAVAILABLE, times=1, method="Check")
    with pytest.raises(StoreUnavailable, match="gRPC health"):
        await index.ping()


async def test_traced_calls_are_client_spans_of_the_maintained_instrumentations_under_the_caller(
    fake: FakeWeaviate, httpserver: HTTPServer
) -> None:
    """With tracing on, each gRPC call (searches, batch writes) and each REST call (schema,
    tenants) the client makes is a span of OpenTelemetry's grpc and httpx instrumentations,
    under the span that was current: in a request, the loader batch's. A failing call is a
    span with an error status, and still StoreUnavailable to us."""
    exporter = InMemorySpanExporter()
    telemetry = Telemetry([SimpleSpanProcessor(exporter)])
    telemetry.start()
    tenant = uuid.uuid4()
    try:
        tracer = telemetry.tracer("test")
        # Opened while instrumented, as the app opens its stores.
        async with connected(fake, httpserver) as index:
            with tracer.start_as_current_span("VectorIndex batch") as batch:
                await index.upsert(tenant, [campaign(uuid.uuid4(), vec(1.0))])
                await index.search(tenant, VectorQuery(vec(1.0), (VectorKind.CAMPAIGN,), 1))
            fake.fail_grpc(grpc.StatusCode.INVALID_ARGUMENT, times=1, method="Search")
            with (
                tracer.start_as_current_span("failing batch") as failing,
                pytest.raises(StoreUnavailable),
            ):
                await index.search(tenant, VectorQuery(vec(1.0), (VectorKind.CAMPAIGN,), 1))
    finally:
        telemetry.stop()
    spans = exporter.get_finished_spans()

    def grpc_children(parent: Span) -> list[ReadableSpan]:
        span_id = parent.get_span_context().span_id
        return [
            s
            for s in spans
            if s.parent is not None
            and s.parent.span_id == span_id
            and s.kind is SpanKind.CLIENT
            and (s.attributes or {}).get("rpc.system") == "grpc"
        ]

    names = {s.name for s in grpc_children(batch)}
    assert {"/weaviate.v1.Weaviate/Search", "/weaviate.v1.Weaviate/BatchObjects"} <= names
    [failed] = grpc_children(failing)
    assert failed.name == "/weaviate.v1.Weaviate/Search"
    assert failed.status.status_code is StatusCode.ERROR
    rest = [
        s
        for s in spans
        if s.kind is SpanKind.CLIENT and "/v1/" in str((s.attributes or {}).get("http.url", ""))
    ]
    assert rest, [(s.name, dict(s.attributes or {})) for s in spans]


def test_only_an_app_that_uses_weaviate_instruments_its_transports() -> None:
    """grpc and its instrumentation are start-up time for an app on pgvector: not imported."""
    untouched = grpc.aio.insecure_channel
    with instrumented(Telemetry([]), weaviate=False):
        assert grpc.aio.insecure_channel is untouched
    with instrumented(Telemetry([]), weaviate=True):
        assert grpc.aio.insecure_channel is not untouched
    assert grpc.aio.insecure_channel is untouched


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_rest_down_at_connect_is_store_unavailable() -> None:
    started = time.perf_counter()
    with pytest.raises(StoreUnavailable, match="Weaviate is unavailable: connect") as caught:
        async with open_weaviate_index(f"http://127.0.0.1:{_free_port()}", 2.0):
            pass
    assert caught.value.store == "Weaviate"
    assert caught.value.extensions["code"] == "STORE_UNAVAILABLE"
    assert time.perf_counter() - started < 3.0


async def test_rest_error_at_connect_is_store_unavailable(
    fake: FakeWeaviate, httpserver: HTTPServer
) -> None:
    fake.fail_rest(503, times=1, path="/v1/meta")
    with pytest.raises(StoreUnavailable, match="Weaviate is unavailable: connect"):
        async with connected(fake, httpserver):
            pass


async def test_grpc_down_at_connect_is_store_unavailable(
    fake: FakeWeaviate, httpserver: HTTPServer
) -> None:
    fake.stop()
    with pytest.raises(StoreUnavailable, match="gRPC health"):
        async with connected(fake, httpserver, 1.0):
            pass


async def test_bad_urls_are_refused() -> None:
    with pytest.raises(StoreUnavailable, match="WEAVIATE_URL"):
        async with open_weaviate_index("weaviate:8080", 1.0):
            pass


# -- a real server ----------------------------------------------------------------------------

needs_weaviate = pytest.mark.skipif(
    not os.environ.get("WEAVIATE_URL"), reason="WEAVIATE_URL is not set"
)


@asynccontextmanager
async def real_weaviate() -> AsyncIterator[WeaviateVectorIndex]:
    """The server at WEAVIATE_URL (gRPC on WEAVIATE_GRPC_PORT, default 50051); the tenants a
    test made are removed afterwards."""
    url = os.environ["WEAVIATE_URL"]
    grpc_port = int(os.environ.get("WEAVIATE_GRPC_PORT", "50051"))
    async with open_weaviate_index(
        url, 10.0, grpc_port=grpc_port, api_key=os.environ.get("WEAVIATE_API_KEY") or None
    ) as index:
        await index.ensure_ready()
        before = set(await index.tenants())
        try:
            yield index
        finally:
            made = [str(t) for t in set(await index.tenants()) - before]
            if made:
                await asyncio.gather(
                    *(
                        index.client.collections.use(name).tenants.remove(made)
                        for name in COLLECTIONS.values()
                    ),
                    return_exceptions=True,
                )


@needs_weaviate
class TestWeaviateContractOnARealServer(VectorIndexContract):
    @pytest_asyncio.fixture
    async def index(self) -> AsyncIterator[WeaviateVectorIndex]:
        async with real_weaviate() as index:
            yield index


@needs_weaviate
async def test_basic_contract_against_a_real_weaviate() -> None:
    async with real_weaviate() as index:
        await basic_contract(index)
