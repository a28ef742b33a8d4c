"""``extensions.plan``: the store calls of a request, in order, with their batching; asked
for by a header, in production by admins only."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from app.auth import Role
from app.settings import Environment, Settings
from tests.api.dashboard_data import dashboard_tenant, last_day
from tests.api.test_dashboard_query import DASHBOARD
from tests.processes import run_chimera, served_env
from tests.support import TenantClient, new_tenant

# The README's dashboard query over six campaigns that share one agent: one call per store
# and loader, each batching all six campaigns (or the one agent all six resolvers ask for).
# (store, loader, keys, values returned, resolver calls served)
DASHBOARD_PLAN = [
    ("PostgreSQL", "CampaignStatsLoader", 1, 1, 1),
    ("PostgreSQL", "CampaignCountByFilterLoader", 1, 1, 1),
    ("PostgreSQL", "CampaignPageByQueryLoader", 1, 6, 2),  # edges and pageInfo: one page
    ("Redis", "EngagementByCampaignLoader", 6, 6, 6),
    ("PostgreSQL", "AgentsByCampaignLoader", 6, 6, 6),
    ("PostgreSQL", "MediaByCampaignLoader", 6, 0, 6),  # no media: six empty lists
    ("VectorIndex", "SimilarCampaignsByCampaignLoader", 6, 18, 6),  # limit: 3 each
    ("PostgreSQL", "MetricsByCampaignLoader", 6, 6, 6),
    ("PostgreSQL", "HistoryByAggregateLoader", 6, 18, 6),
    ("PostgreSQL", "TransactionsByCampaignLoader", 6, 6, 6),
    ("Redis", "EngagementTotalLoader", 1, 1, 1),
    ("Redis", "TaskCountsByAgentLoader", 1, 1, 6),  # six campaigns, one agent
    ("PostgreSQL", "MemoryCountByAgentLoader", 1, 1, 6),
]


async def planned(
    http: AsyncClient, tenant: TenantClient, first: int, role: Role = Role.EDITOR
) -> dict[str, Any]:
    response = await http.post(
        "/graphql",
        json={"query": DASHBOARD, "variables": {"first": first, **last_day()}},
        headers={"Authorization": f"Bearer {tenant.token(role)}", "X-Chimera-Plan": "1"},
    )
    body: dict[str, Any] = response.json()
    assert not body.get("errors"), body["errors"]
    return body


def shape(plan: dict[str, Any]) -> list[tuple[str, str, int, int, int]]:
    return [
        (s["store"], s["loader"], s["keys"], s["returned"], s["servedCalls"]) for s in plan["steps"]
    ]


async def test_the_dashboard_plan_lists_every_store_call_with_its_batching(
    app: Starlette, engine: AsyncEngine, http: AsyncClient
) -> None:
    tenant = await dashboard_tenant(app, engine, http)
    plan = (await planned(http, tenant, 6))["extensions"]["plan"]
    steps = shape(plan)
    assert sorted(steps) == sorted(DASHBOARD_PLAN)
    # In order: a call starts only once what it depends on has answered.
    order = [loader for _, loader, *_ in steps]
    assert order[:3] == [
        "CampaignStatsLoader",
        "CampaignCountByFilterLoader",
        "CampaignPageByQueryLoader",
    ]
    for before, after in [
        ("CampaignPageByQueryLoader", "AgentsByCampaignLoader"),
        ("AgentsByCampaignLoader", "TaskCountsByAgentLoader"),
        ("AgentsByCampaignLoader", "MemoryCountByAgentLoader"),
        ("CampaignStatsLoader", "EngagementTotalLoader"),
    ]:
        assert order.index(before) < order.index(after), order
    started = [s["startedMs"] for s in plan["steps"]]
    assert started == sorted(started)
    assert all(s["durationMs"] > 0 for s in plan["steps"])
    assert plan["storeCalls"] == len(DASHBOARD_PLAN)
    assert {k: v["calls"] for k, v in plan["byStore"].items()} == {
        "PostgreSQL": 9,
        "Redis": 3,
        "VectorIndex": 1,
    }


async def test_the_plan_has_the_same_calls_for_a_smaller_page(
    app: Starlette, engine: AsyncEngine, http: AsyncClient
) -> None:
    tenant = await dashboard_tenant(app, engine, http)
    small = shape((await planned(http, tenant, 2))["extensions"]["plan"])
    large = shape((await planned(http, tenant, 6))["extensions"]["plan"])
    # The same loaders, once each, but for the similar campaigns that are not on a small
    # page: they are read by id, one more batch.
    assert Counter(s[1] for s in large) == Counter(
        s[1] for s in small if s[1] != "CampaignByIdLoader"
    )
    assert set(Counter(s[1] for s in small).values()) == {1}
    assert len(small) <= len(large) + 1


async def test_no_plan_unless_asked(engine: AsyncEngine, http: AsyncClient) -> None:
    tenant = await new_tenant(engine, http)
    body = await tenant.gql("{ campaigns(first: 2) { totalCount } }")
    assert "plan" not in body["extensions"]


@pytest.mark.parametrize(("role", "shown"), [(Role.ADMIN, True), (Role.EDITOR, False)])
async def test_in_production_only_admins_get_the_plan(
    settings: Settings,
    engine: AsyncEngine,
    tmp_path: Any,
    role: Role,
    shown: bool,
) -> None:
    from httpx import ASGITransport

    from tests.support import another_app

    async with (
        another_app(settings, tmp_path, env=Environment.PRODUCTION) as application,
        AsyncClient(transport=ASGITransport(app=application), base_url="http://t") as http,
    ):
        tenant = await new_tenant(engine, http)
        response = await http.post(
            "/graphql",
            json={"query": "{ campaigns(first: 2) { totalCount } }"},
            headers={"Authorization": f"Bearer {tenant.token(role)}", "X-Chimera-Plan": "1"},
        )
        assert ("plan" in response.json()["extensions"]) is shown


async def test_chimera_explain_prints_the_plan_of_a_query_file_and_refuses_writes(
    engine: AsyncEngine,
    http: AsyncClient,
    database_url: str,
    redis_url: str,
    pgvector_url: str,
    tmp_path: Path,
) -> None:
    tenant = await new_tenant(engine, http)
    for name in ("North", "South"):
        await tenant.data(
            "mutation($n: String!) { createCampaign(input: {name: $n}) { campaign { id } } }",
            {"n": name},
        )
    env = served_env(database_url, redis_url, pgvector_url, tmp_path / "data")
    query = tmp_path / "names.graphql"
    query.write_text(
        "query Names($first: Int!) { campaigns(first: $first) { edges { node { name "
        "engagement { clicks } } } } }"
    )
    args = ("explain", str(query), "--tenant", tenant.slug, "--variables", '{"first": 5}')
    shown = run_chimera(*args, env=env)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].split() == [
        "#",
        "store",
        "loader",
        "keys",
        "returned",
        "served",
        "start",
        "ms",
        "ms",
    ]
    assert lines[1].split()[:6] == ["1", "PostgreSQL", "CampaignPageByQueryLoader", "1", "2", "1"]
    assert lines[2].split()[:6] == ["2", "Redis", "EngagementByCampaignLoader", "2", "2", "2"]
    assert lines[3].startswith("2 store calls: PostgreSQL 1 (")
    as_json = run_chimera(*args, "--json", env=env)
    assert json.loads(as_json.stdout)["storeCalls"] == 2

    write = tmp_path / "write.graphql"
    write.write_text('mutation { createCampaign(input: {name: "X"}) { campaign { id } } }')
    refused = run_chimera("explain", str(write), "--tenant", tenant.slug, env=env)
    assert refused.returncode == 1
    assert "only queries are explained" in refused.stderr
    nobody = run_chimera("explain", str(query), "--tenant", "nobody-here", env=env)
    assert nobody.returncode == 1 and "no tenant 'nobody-here'" in nobody.stderr
