"""A tenant whose campaigns have everything the README's dashboard query shows."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from app.indexing.reconcile import repair
from app.lifespan import Stores
from tests.support import TenantClient, new_tenant, settle_metrics


async def dashboard_tenant(
    app: Starlette, engine: AsyncEngine, http: AsyncClient, campaigns: int = 6
) -> TenantClient:
    """A new tenant with one agent and ``campaigns`` campaigns, each with that agent,
    engagement, a transaction (so history and metrics), and their vectors indexed."""
    tenant = await new_tenant(engine, http)
    agent = (await tenant.data('mutation { createAgent(input: {name: "Ava"}) { agent { id } } }'))[
        "createAgent"
    ]["agent"]["id"]
    for i in range(campaigns):
        created = await tenant.data(
            """mutation($n: String!) { createCampaign(input: {name: $n, budget: "500",
              goal: "Sell sneakers to runners"}) { campaign { id } } }""",
            {"n": f"Campaign {i}"},
        )
        campaign = created["createCampaign"]["campaign"]["id"]
        await tenant.data(
            """mutation($c: ID!, $a: ID!) { assignAgents(input: {campaignId: $c,
              agentIds: [$a]}) { campaign { id } } }""",
            {"c": campaign, "a": agent},
        )
        await tenant.data(
            """mutation($c: ID!) { recordEngagement(input: {campaignId: $c, kind: CLICK,
              count: 2}) { engagement { clicks } } }""",
            {"c": campaign},
        )
        await tenant.data(
            """mutation($c: ID!, $k: String!) { recordTransaction(input: {campaignId: $c,
              kind: SPEND, amount: "1.50", idempotencyKey: $k}) { transaction { id } } }""",
            {"c": campaign, "k": uuid.uuid4().hex},
        )
    stores: Stores = app.state.stores
    assert stores.embedder is not None
    await repair(stores.engine, stores.vectors, stores.embedder)
    await settle_metrics(engine)
    return tenant


def last_day() -> dict[str, str]:
    """The dashboard query's metrics window: the last 24 hours, hour by hour."""
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    return {
        "from": (hour - timedelta(hours=23)).isoformat(),
        "to": (hour + timedelta(hours=1)).isoformat(),
    }
