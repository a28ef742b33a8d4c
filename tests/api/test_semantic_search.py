"""Semantic search over the real model and the pgvector index, kept in step by the indexer."""

from __future__ import annotations

import math
import uuid
from typing import Any

import pytest
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from app.ids import decode_id
from app.indexing.reconcile import find_drift, repair
from app.lifespan import Stores
from app.seed import CAMPAIGNS
from app.stores.postgres.tables import campaign
from app.stores.vectors.port import DIMENSIONS, VectorKind, VectorRecord
from tests.indexing import index_everything
from tests.support import TenantClient, count_statements, error_codes

SEARCH = """query($q: String, $v: [Float!], $types: [SearchType!], $limit: Int) {
  semanticSearch(query: $q, vector: $v, types: $types, limit: $limit) {
    score node { __typename ... on Campaign { id name agents { totalCount } }
                 ... on Agent { id name } ... on AgentMemory { id text } } } }"""
CREATE = """mutation($name: String!, $goal: String!) {
  createCampaign(input: {name: $name, goal: $goal}) { campaign { id } } }"""


async def demo_campaigns(tenant: TenantClient) -> dict[str, str]:
    ids = {}
    for name, goal, *_ in CAMPAIGNS:
        data = await tenant.data(CREATE, {"name": name, "goal": goal})
        ids[name] = data["createCampaign"]["campaign"]["id"]
    return ids


def names(body: dict[str, Any]) -> list[str]:
    return [hit["node"]["name"] for hit in body["semanticSearch"]]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("eco-friendly clothes made from recycled materials", "Sustainable fashion spring drop"),
        ("workout tracking for people who go to the gym", "Fitness app launch"),
        ("zero trust network protection for IT managers", "Cloud security webinar"),
        ("book a drive in a battery powered car", "Electric car test drives"),
        ("gifts for kids before Christmas", "Holiday toy sale"),
    ],
)
async def test_a_topic_finds_the_campaign_about_it_first(
    tenant: TenantClient, app: Starlette, query: str, expected: str
) -> None:
    await demo_campaigns(tenant)
    await index_everything(app)
    body = await tenant.data(SEARCH, {"q": query, "types": ["CAMPAIGN"], "limit": 6})
    ranked = names(body)
    assert ranked[0] == expected, ranked
    scores = [hit["score"] for hit in body["semanticSearch"]]
    assert scores == sorted(scores, reverse=True)


async def test_hits_are_full_objects_and_another_tenant_finds_none_of_them(
    tenant: TenantClient, other_tenant: TenantClient, app: Starlette
) -> None:
    await demo_campaigns(tenant)
    await index_everything(app)
    body = await tenant.data(SEARCH, {"q": "coffee", "limit": 3})
    assert body["semanticSearch"][0]["node"]["__typename"] == "Campaign"
    assert body["semanticSearch"][0]["node"]["agents"] == {"totalCount": 0}
    assert (await other_tenant.data(SEARCH, {"q": "coffee"}))["semanticSearch"] == []


async def test_a_client_vector_searches_without_the_model(
    tenant: TenantClient, app: Starlette
) -> None:
    ids = await demo_campaigns(tenant)
    await index_everything(app)
    stores: Stores = app.state.stores
    assert stores.embedder is not None
    [vector] = await stores.embedder.embed(["single-origin coffee beans delivered monthly"])
    body = await tenant.data(SEARCH, {"v": vector, "types": ["CAMPAIGN"], "limit": 1})
    assert body["semanticSearch"][0]["node"]["id"] == ids["Coffee subscription winter push"]


@pytest.mark.parametrize(
    "variables",
    [
        {},
        {"q": "   "},
        {"q": "x" * 1001},
        {"q": "ok", "limit": 51},
        {"q": "ok", "limit": 0},
        {"v": [0.1] * (DIMENSIONS - 1)},
        {"v": [0.0] * DIMENSIONS},
    ],
)
async def test_bad_searches_are_bad_user_input(
    tenant: TenantClient, variables: dict[str, Any]
) -> None:
    assert error_codes(await tenant.gql(SEARCH, variables)) == ["BAD_USER_INPUT"]


async def test_a_hit_whose_row_is_gone_is_dropped(
    tenant: TenantClient, app: Starlette, engine: AsyncEngine
) -> None:
    ids = await demo_campaigns(tenant)
    await index_everything(app)
    assert "Holiday toy sale" in ids
    async with engine.begin() as conn:  # removed behind the indexer's back
        await conn.execute(
            text("DELETE FROM campaign WHERE tenant_id = :t AND name = :n"),
            {"t": tenant.id, "n": "Holiday toy sale"},
        )
    body = await tenant.data(
        SEARCH, {"q": "gifts for kids before Christmas", "types": ["CAMPAIGN"]}
    )
    assert "Holiday toy sale" not in names(body)
    assert len(body["semanticSearch"]) == len(CAMPAIGNS) - 1


async def test_similar_campaigns_for_a_page_cost_the_same_store_calls_for_5_and_50(
    tenant: TenantClient, app: Starlette, engine: AsyncEngine
) -> None:
    topics = [goal for _, goal, *_ in CAMPAIGNS]
    async with engine.begin() as conn:
        await conn.execute(
            insert(campaign),
            [
                {
                    "id": uuid.uuid4(),
                    "tenant_id": tenant.id,
                    "name": f"c{i}",
                    "goal": f"{topics[i % len(topics)]} (variant {i})",
                }
                for i in range(50)
            ],
        )
    stores: Stores = app.state.stores
    assert stores.embedder is not None
    await repair(stores.engine, stores.vectors, stores.embedder)
    calls: list[str] = []
    original = stores.vectors.similar_to

    async def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append("similar_to")
        return await original(*args, **kwargs)

    stores.vectors.similar_to = spy  # type: ignore[method-assign]
    vector_engine = getattr(stores.vectors, "engine", None)
    try:
        counts = {}
        for n in (5, 50):
            calls.clear()
            with (
                count_statements(engine) as sql,
                count_statements(vector_engine or engine) as index,
            ):
                data = await tenant.data(
                    "query($n: Int!) { campaigns(first: $n) { edges { node { name "
                    "similar(limit: 3) { score campaign { name } } } } } }",
                    {"n": n},
                )
            edges = data["campaigns"]["edges"]
            assert all(len(e["node"]["similar"]) == 3 for e in edges)
            assert all(
                e["node"]["name"] not in [s["campaign"]["name"] for s in e["node"]["similar"]]
                for e in edges
            )
            counts[n] = (len(calls), sql.count, index.count)
    finally:
        del stores.vectors.similar_to
    # One index call per request, which is one statement in pgvector whatever the page
    # size (a per-row search would be 5 and 50); SQL: the page, plus one statement for hit
    # rows that were not on the page already (at 50, every similar campaign is on it).
    assert counts[5][0] == counts[50][0] == 1
    if vector_engine is not None:  # pgvector; Weaviate's requests: tests/contract
        assert counts[5][2] == counts[50][2] == 1, counts
    assert counts[5][1] <= 2
    assert counts[50][1] <= 2


async def test_memories_are_recalled_by_meaning_and_listed_by_recency(
    tenant: TenantClient, app: Starlette
) -> None:
    agent = await tenant.data('mutation { createAgent(input: {name: "Mnemo"}) { agent { id } } }')
    agent_id = agent["createAgent"]["agent"]["id"]
    texts = [
        "The client prefers pastel colours in every banner.",
        "Budget meetings happen on Tuesdays at 10am.",
        "Our audience in Lisbon responds best to surf imagery.",
    ]
    for memory in texts:
        await tenant.data(
            "mutation($a: ID!, $t: String!) { addAgentMemory(input: {agentId: $a, "
            "text: $t}) { memory { id text agent { id } } } }",
            {"a": agent_id, "t": memory},
        )
    await index_everything(app)
    query = """query($id: ID!, $q: String) { agent(id: $id) {
        memories(query: $q, limit: 2) { score memory { text } } } }"""
    recalled = await tenant.data(query, {"id": agent_id, "q": "what colour scheme for ads?"})
    hits = recalled["agent"]["memories"]
    assert hits[0]["memory"]["text"] == texts[0]
    assert hits[0]["score"] > hits[1]["score"]
    recent = (await tenant.data(query, {"id": agent_id, "q": None}))["agent"]["memories"]
    assert [h["memory"]["text"] for h in recent] == [texts[2], texts[1]]
    assert all(h["score"] is None for h in recent)


async def test_edits_reach_the_index_and_reconcile_repairs_drift(
    tenant: TenantClient, app: Starlette
) -> None:
    ids = await demo_campaigns(tenant)
    await index_everything(app)
    stores: Stores = app.state.stores
    assert stores.embedder is not None
    mine = [d for d in await find_drift(stores.engine, stores.vectors) if d.tenant_id == tenant.id]
    assert mine == []
    await tenant.data(
        'mutation($id: ID!) { updateCampaign(input: {id: $id, goal: "Sell warm '
        'wool socks to hikers"}) { campaign { id } } }',
        {"id": ids["Cloud security webinar"]},
    )
    await index_everything(app)
    body = await tenant.data(SEARCH, {"q": "hiking socks", "types": ["CAMPAIGN"], "limit": 1})
    assert names(body) == ["Cloud security webinar"]
    # Drift made behind the indexer's back is found and repaired.
    lost = decode_id(ids["Fitness app launch"], "Campaign")
    await stores.vectors.delete(tenant.id, VectorKind.CAMPAIGN, [lost])
    orphan = VectorRecord(VectorKind.CAMPAIGN, uuid.uuid4(), body_vector(), "ghost", None, "x")
    await stores.vectors.upsert(tenant.id, [orphan])
    [drift] = [
        d for d in await find_drift(stores.engine, stores.vectors) if d.tenant_id == tenant.id
    ]
    assert (drift.missing, drift.stale, drift.orphaned) == ([lost], [], [orphan.row_id])
    await repair(stores.engine, stores.vectors, stores.embedder)
    assert [
        d for d in await find_drift(stores.engine, stores.vectors) if d.tenant_id == tenant.id
    ] == []
    assert math.isfinite(body["semanticSearch"][0]["score"])


def body_vector() -> list[float]:
    return [1.0 / math.sqrt(DIMENSIONS)] * DIMENSIONS
