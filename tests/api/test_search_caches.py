"""The shared caches in Redis: a search text is embedded once per tenant, and similar
campaigns come from the cache until the campaign vectors change, never stale after."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from app.lifespan import Stores
from tests.api.test_embedding_limits import ForwardPasses
from tests.heavy_search import the_model
from tests.indexing import index_everything
from tests.support import TenantClient, count_statements

SEARCH = """query($q: String!) { semanticSearch(query: $q, types: [CAMPAIGN]) { score } }"""
CREATE = """mutation($name: String!, $goal: String!) {
  createCampaign(input: {name: $name, goal: $goal}) { campaign { id } } }"""
UPDATE = """mutation($id: ID!, $goal: String!) {
  updateCampaign(input: {id: $id, goal: $goal}) { campaign { id } } }"""
SIMILAR = """query($id: ID!) { campaign(id: $id) { similar(limit: 2) { campaign { id } } } }"""


async def test_a_text_searched_again_is_not_embedded_again_but_per_tenant(
    tenant: TenantClient,
    other_tenant: TenantClient,
    app: Starlette,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    passes = ForwardPasses(the_model(app), monkeypatch)
    text = "eco friendly sneakers for marathon runners in autumn"
    await tenant.data(SEARCH, {"q": text})
    first = passes.count
    assert first >= 1
    await tenant.data(SEARCH, {"q": text})
    assert passes.count == first  # from Redis, not from the model
    await other_tenant.data(SEARCH, {"q": text})
    assert passes.count > first  # another tenant's cache is its own


async def create(tenant: TenantClient, name: str, goal: str) -> str:
    found: dict[str, Any] = await tenant.data(CREATE, {"name": name, "goal": goal})
    campaign_id: str = found["createCampaign"]["campaign"]["id"]
    return campaign_id


async def test_similar_campaigns_are_cached_until_the_vectors_change(
    tenant: TenantClient, app: Starlette, engine: AsyncEngine
) -> None:
    anchor = await create(tenant, "Trail shoes", "Sell trail running shoes to mountain runners")
    near = await create(tenant, "Road shoes", "Sell road running shoes to city marathon runners")
    far = await create(tenant, "Coffee", "Grow subscriptions for single-origin coffee beans")
    await index_everything(app)
    stores: Stores = app.state.stores
    vector_engine = getattr(stores.vectors, "engine", None) or engine
    first = (await tenant.data(SIMILAR, {"id": anchor}))["campaign"]["similar"]
    assert [hit["campaign"]["id"] for hit in first] == [near, far]
    with count_statements(vector_engine) as vectors:
        again = (await tenant.data(SIMILAR, {"id": anchor}))["campaign"]["similar"]
    assert again == first
    assert not [s for s in vectors.statements if "embedding" in s], "answered by the index"
    # Coffee becomes the closest: once the indexer has applied that, the cache must say so.
    await tenant.data(UPDATE, {"id": far, "goal": "Sell trail running shoes to mountain runners"})
    await index_everything(app)
    after = (await tenant.data(SIMILAR, {"id": anchor}))["campaign"]["similar"]
    assert [hit["campaign"]["id"] for hit in after] == [far, near]
