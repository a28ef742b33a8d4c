"""The whole dashboard in one query: every store joined, and the calls per store do not grow
with the number of campaigns on the page."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from app.indexing.reconcile import repair
from app.lifespan import Stores
from tests.api.media_flow import complete, request_upload, upload
from tests.support import (
    CHARGE,
    count_redis_round_trips,
    count_statements,
    new_tenant,
    settle_metrics,
)

DASHBOARD = """
query Dashboard($first: Int!, $from: DateTime!, $to: DateTime!) {
  campaignStats { total totalSpent { amount currency } engagement { clicks } }
  campaigns(first: $first) {
    totalCount
    edges { cursor node {
      id name status budget spent remainingBudget currency
      engagement { impressions clicks likes shares comments }
      agents(first: 5) { edges { node { id name activeTasks stats { memories } } } }
      media(first: 4) { edges { node { id filename url } } }
      similar(limit: 3) { score campaign { id name } }
      metrics(from: $from, to: $to, bucket: HOUR) { at clicks spend }
      history(first: 5) { edges { node { action occurredAt changes { field } } } }
      transactions(first: 3) { edges { node { amount kind } } }
    } }
    pageInfo { hasNextPage endCursor }
  }
}
"""


def shapes(statements: list[str]) -> list[str]:
    return list(statements)  # constant SQL: a statement run per campaign would repeat its text


async def test_the_full_dashboard_costs_the_same_store_calls_for_5_and_50_campaigns(
    app: Starlette, engine: AsyncEngine, http: AsyncClient
) -> None:
    tenant = await new_tenant(engine, http)
    agent = (await tenant.data('mutation { createAgent(input: {name: "Ava"}) { agent { id } } }'))[
        "createAgent"
    ]["agent"]["id"]
    for i in range(50):
        created = await tenant.data(
            """mutation($n: String!) { createCampaign(input: {name: $n, budget: "500",
              goal: "Sell sneakers to runners"}) { campaign { id } } }""",
            {"n": f"Campaign {i}"},
        )
        campaign_id = created["createCampaign"]["campaign"]["id"]
        await tenant.data(
            """mutation($c: ID!, $a: ID!) { assignAgents(input: {campaignId: $c, agentIds: [$a]}) {
              campaign { id } } }""",
            {"c": campaign_id, "a": agent},
        )
        await tenant.data(
            """mutation($c: ID!) { recordEngagement(input: {campaignId: $c, kind: CLICK, count: 2}) {
              engagement { clicks } } }""",
            {"c": campaign_id},
        )
        await tenant.data(
            """mutation($c: ID!, $k: String!) { recordTransaction(input: {campaignId: $c,
              kind: SPEND, amount: "12.50", idempotencyKey: $k}) { transaction { id } } }""",
            {"c": campaign_id, "k": uuid.uuid4().hex},
        )
        if i % 10 == 0:
            ticket = await request_upload(tenant, campaign_id)
            assert (await upload(http, ticket)).status_code < 300
            assert not (await complete(tenant, ticket["asset"]["id"])).get("errors")
    stores: Stores = app.state.stores
    assert stores.embedder is not None
    await repair(stores.engine, stores.vectors, stores.embedder)
    await settle_metrics(engine)
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    window = {
        "from": (hour - timedelta(hours=23)).isoformat(),
        "to": (hour + timedelta(hours=1)).isoformat(),
    }
    vector_engine = getattr(stores.vectors, "engine", None)

    calls: dict[int, dict[str, Any]] = {}
    for size in (5, 50):
        with (
            count_statements(engine) as sql,
            count_statements(vector_engine or engine) as vectors,
            count_redis_round_trips() as redis,
        ):
            data = await tenant.data(DASHBOARD, {"first": size, **window})
        nodes = [edge["node"] for edge in data["campaigns"]["edges"]]
        assert len(nodes) == size
        assert all(node["engagement"]["clicks"] == 2 for node in nodes)
        assert all(node["spent"] == "12.50" for node in nodes)
        assert all(len(node["metrics"]) == 24 for node in nodes)
        assert all(sum(p["clicks"] for p in node["metrics"]) == 2 for node in nodes)
        assert all(len(node["similar"]) == 3 for node in nodes)
        assert all(
            "ledger.spend" in [e["node"]["action"] for e in node["history"]["edges"]]
            for node in nodes
        )
        assert all(node["agents"]["edges"][0]["node"]["activeTasks"] == 0 for node in nodes)
        assert nodes[0]["media"]["edges"][0]["node"]["url"].startswith("http")
        assert data["campaignStats"]["total"] == 50
        calls[size] = {
            "sql": shapes(sql.statements),
            "vectors": len(vectors.statements) if vector_engine is not None else 0,
            "redis": len(redis.statements),
        }
    for size, seen in calls.items():
        # No statement runs once per campaign: each shape appears once per request.
        assert len(seen["sql"]) == len(set(seen["sql"])), (size, seen["sql"])
    # The same statements at 5 and 50, but for the hydration of similar campaigns that
    # were not on the page (at 50 they all are).
    assert set(calls[50]["sql"]) <= set(calls[5]["sql"]), calls
    assert len(calls[5]["sql"]) - len(calls[50]["sql"]) <= 1, calls
    assert calls[5]["vectors"] == calls[50]["vectors"] <= 1, calls
    # engagement, activeTasks and the stats' engagement sum: one command each; the similar
    # campaigns' cache: one read, and one pipeline writing the answers it did not hold.
    assert calls[5]["redis"] == calls[50]["redis"] == 5 + CHARGE, calls
