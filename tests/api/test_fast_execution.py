"""Planned execution is a drop-in: every query answers exactly as on stock Strawberry.

Each query is sent to the app (planned execution) and to its twin (stock execution) over
the same stores, and the two HTTP responses must be equal: status, data, errors with their
messages, locations, paths and codes, masking, extensions. The queries are every query of
the test suite and the README, then queries hypothesis-graphql draws from the schema
(steered towards real ids and small pages, so that most reach data and not only errors),
then the same with Redis or PostgreSQL unreachable.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from graphql import (
    ArgumentNode,
    DocumentNode,
    IntValueNode,
    ListValueNode,
    NullValueNode,
    StringValueNode,
    print_ast,
    visit,
)
from graphql import (
    build_schema as build_graphql_schema,
)
from graphql.language import Visitor
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import nodes, queries
from starlette.applications import Starlette

from app.schema import schema_sdl
from app.settings import Settings
from app.stores.objects import local
from app.stores.postgres.engine import create_engine
from app.stores.redis.client import create_redis
from tests.api.differential import (
    LIVE_FIELDS,
    Pair,
    Seeded,
    assert_same,
    clients,
    corpus,
    seed,
    stock_twin,
    variables_for,
)
from tests.processes import free_port
from tests.support import new_tenant


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def twin(app: Starlette, settings: Settings) -> Starlette:
    return stock_twin(app, settings)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def pair(app: Starlette, twin: Starlette) -> AsyncIterator[Pair]:
    async for both in clients(app, twin):
        yield both


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def seeded(app: Starlette, http: httpx.AsyncClient) -> Seeded:
    tenant = await new_tenant(app.state.stores.engine, http)
    return await seed(app, tenant, http)


@pytest.fixture(autouse=True)
def frozen_media_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Presigned URLs carry an expiry from the clock; both executors must read the same."""

    class Frozen:
        @staticmethod
        def time() -> float:
            return 1_900_000_000.0

    monkeypatch.setattr(local, "time", Frozen)


def test_the_corpus_holds_the_queries_of_the_tests_and_the_readme() -> None:
    found = corpus()
    assert len(found) > 40, len(found)
    assert any("budget" in q and "totalCount" in q for q in found), "the README's query"
    assert any("semanticSearch" in q for q in found)


async def test_every_query_of_the_corpus_answers_alike(pair: Pair, seeded: Seeded) -> None:
    compared = 0
    with_data = 0
    for query in corpus():
        for variables in variables_for(query, seeded):
            fast, stock = await pair.both(seeded.tenant, query, variables)
            assert_same(fast, stock, (query, variables))
            compared += 1
            with_data += bool(fast[1].get("data"))
    assert compared > 60 and with_data > compared // 2, (compared, with_data)


SCHEMA = schema_sdl()
# Every root field but those that answer with the caller's live state (differential.py).
ROOT_FIELDS = [
    name
    for name in build_graphql_schema(SCHEMA).query_type.fields  # type: ignore[union-attr]
    if name not in LIVE_FIELDS
]
SCALARS = {
    "DateTime": st.sampled_from(["2026-03-01T00:00:00+00:00", "yesterday"]).map(nodes.String),
    "Decimal": st.sampled_from(["10.50", "-1", "x"]).map(nodes.String),
}


def steered(document: DocumentNode, data: st.DataObject, seeded: Seeded) -> str:
    """The drawn query with most ids replaced by real ones and most page sizes made small,
    so that it reaches data and nested levels rather than failing at its first argument."""

    def real_id() -> StringValueNode:
        return StringValueNode(value=data.draw(st.sampled_from(seeded.ids)))

    class Steer(Visitor):
        def enter_argument(self, node: ArgumentNode, *_: Any) -> ArgumentNode | None:
            name, value = node.name.value, node.value
            if name == "id" and data.draw(st.integers(0, 9)) > 0:
                return ArgumentNode(name=node.name, value=real_id())
            if name == "ids" and isinstance(value, ListValueNode):
                ids = tuple(real_id() for _ in range(data.draw(st.integers(0, 6))))
                return ArgumentNode(name=node.name, value=ListValueNode(values=ids))
            if name in {"first", "limit"} and data.draw(st.integers(0, 9)) > 1:
                small = IntValueNode(value=str(data.draw(st.integers(0, 6))))
                return ArgumentNode(name=node.name, value=small)
            if name in {"after", "vector", "expiresIn"} and data.draw(st.integers(0, 9)) > 0:
                return ArgumentNode(name=node.name, value=NullValueNode())
            if name == "query" and data.draw(st.integers(0, 9)) > 2:
                phrase = data.draw(st.sampled_from(["spring sneakers", "coffee", "went well"]))
                return ArgumentNode(name=node.name, value=StringValueNode(value=phrase))
            return None

    return print_ast(visit(document, Steer()))


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
async def test_generated_queries_answer_alike(
    pair: Pair, seeded: Seeded, data: st.DataObject
) -> None:
    document = data.draw(
        queries(
            SCHEMA,
            fields=ROOT_FIELDS,
            custom_scalars=SCALARS,
            allow_x00=False,
            print_ast=lambda d: d,
        )
    )
    query = steered(document, data, seeded)
    fast, stock = await pair.both(seeded.tenant, query)
    assert_same(fast, stock, query)


DASHBOARD = """
query Dashboard($first: Int!) {
  campaigns(first: $first) {
    edges { cursor node {
      id name status budget
      engagement { impressions clicks likes shares comments }
      similar(limit: 2) { score campaign { id name } }
      agents(first: 3) { edges { node { id name activeTasks } } totalCount }
      media(first: 2) { edges { node { id status url } } }
    } }
    pageInfo { hasNextPage endCursor }
  }
  agents(first: 4) { edges { node { name activeTasks memories(limit: 2) { memory { text } } } } }
}
"""


async def test_with_redis_unreachable_store_fields_are_null_alike(
    app: Starlette, twin: Starlette, pair: Pair, seeded: Seeded
) -> None:
    stores = app.state.stores
    dead = create_redis(f"redis://127.0.0.1:{free_port()}/0", timeout=1)
    app.state.stores = twin.state.stores = dataclasses.replace(stores, redis=dead)
    try:
        fast, stock = await pair.both(seeded.tenant, DASHBOARD, {"first": 6})
    finally:
        app.state.stores = twin.state.stores = stores
        await dead.aclose()
    assert_same(fast, stock, DASHBOARD)
    codes = {e["extensions"]["code"] for e in fast[1]["errors"]}
    assert codes == {"STORE_UNAVAILABLE"}, fast
    assert fast[1]["data"]["campaigns"]["edges"][0]["node"]["engagement"] is None


async def test_with_postgresql_unreachable_errors_propagate_alike(
    app: Starlette, twin: Starlette, pair: Pair, seeded: Seeded
) -> None:
    stores = app.state.stores
    dead = create_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/none", timeout=1)
    app.state.stores = twin.state.stores = dataclasses.replace(stores, engine=dead)
    try:
        fast, stock = await pair.both(seeded.tenant, DASHBOARD, {"first": 6})
    finally:
        app.state.stores = twin.state.stores = stores
        await dead.dispose()
    assert_same(fast, stock, DASHBOARD)
    assert fast[1]["data"] is None and fast[1]["errors"], fast


def test_the_media_clock_is_frozen_for_both_executors() -> None:
    clock: Any = vars(local)["time"]
    assert clock.time() == 1_900_000_000.0 != time.time()
