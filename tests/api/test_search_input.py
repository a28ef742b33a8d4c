"""semanticSearch arguments that used to be half-ignored: a text and a vector together, and
an empty list of types."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from starlette.applications import Starlette

from app.lifespan import Stores
from app.stores.vectors.port import DIMENSIONS
from tests.indexing import index_everything
from tests.support import TenantClient, error_codes

SEARCH = """query($q: String, $v: [Float!], $types: [SearchType!]) {
  semanticSearch(query: $q, vector: $v, types: $types, limit: 50) {
    node { __typename ... on Campaign { name } ... on Agent { name } } } }"""


@contextmanager
def store_calls(app: Starlette) -> Iterator[list[str]]:
    """Names of the embedder and vector index methods called meanwhile: what a search that
    should never have started would have cost."""
    stores: Stores = app.state.stores
    calls: list[str] = []
    watched: list[tuple[object, str]] = [
        (stores.vectors, name) for name in ("search", "search_many")
    ]
    watched += [(stores.embedder, name) for name in ("embed", "embed_for")]
    spied = []
    for owner, name in watched:
        original = getattr(owner, name, None)
        if original is None:
            continue

        async def spy(*args: Any, _name: str = name, _original: Any = original, **kw: Any) -> Any:
            calls.append(_name)
            return await _original(*args, **kw)

        setattr(owner, name, spy)
        spied.append((owner, name))
    try:
        yield calls
    finally:
        for owner, name in spied:
            delattr(owner, name)


async def searchable(tenant: TenantClient, app: Starlette) -> None:
    """A campaign and an agent, both indexed, that any search of the tenant finds."""
    await tenant.data(
        'mutation { createCampaign(input: {name: "Coffee push", goal: "Sell coffee beans"}) '
        "{ campaign { id } } }"
    )
    await tenant.data(
        'mutation { createAgent(input: {name: "Barista", persona: "Talks about coffee"}) '
        "{ agent { id } } }"
    )
    await index_everything(app)


async def test_a_query_with_a_vector_is_refused_naming_both_before_any_store_call(
    tenant: TenantClient, app: Starlette
) -> None:
    with store_calls(app) as calls:
        body = await tenant.gql(SEARCH, {"q": f"coffee {uuid.uuid4()}", "v": [0.1] * DIMENSIONS})
    assert error_codes(body) == ["BAD_USER_INPUT"]
    message = body["errors"][0]["message"]
    assert "'query'" in message and "'vector'" in message, message
    assert body["data"] is None
    assert calls == []


async def test_empty_types_find_nothing_unsearched_while_null_or_listed_types_still_search(
    tenant: TenantClient, app: Starlette
) -> None:
    await searchable(tenant, app)
    text = f"coffee {uuid.uuid4()}"  # not in the embedding cache: a search would embed it
    with store_calls(app) as calls:
        assert (await tenant.data(SEARCH, {"q": text, "types": []}))["semanticSearch"] == []
        vector = [0.1] * DIMENSIONS
        assert (await tenant.data(SEARCH, {"v": vector, "types": []}))["semanticSearch"] == []
    assert calls == []
    kinds = {}
    with store_calls(app) as searched:
        for given in ({}, {"types": None}, {"types": ["AGENT"]}):
            body = await tenant.data(SEARCH, {"q": "coffee", **given})
            kinds[str(given)] = {hit["node"]["__typename"] for hit in body["semanticSearch"]}
    assert "search_many" in searched  # the spy sees real searches: its silence above counts
    assert kinds == {
        "{}": {"Campaign", "Agent"},
        "{'types': None}": {"Campaign", "Agent"},
        "{'types': ['AGENT']}": {"Agent"},
    }
