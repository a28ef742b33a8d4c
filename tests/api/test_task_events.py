"""Task state changes, live: agentEvents for every task, campaignEvents for a campaign's, both
resumable from an event id, and an agent token that follows its own agent only."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

import httpx
import pytest
from gql import GraphQLRequest
from gql.transport.exceptions import TransportQueryError
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from app.auth import Role
from tests.api.hub_state import until_subscribed
from tests.api.subscriptions_client import events, ws_session
from tests.api.test_sse import sse_events
from tests.api.test_subscriptions import relayed
from tests.api.test_tasks import CAMPAIGN, COMPLETE, claim, enqueue, new_agent
from tests.support import TenantClient

AGENT_EVENTS = """subscription($agentId: ID, $after: String) {
  agentEvents(agentId: $agentId, after: $after) {
    id type occurredAt agent { id } task { id status } } }"""


def agent_events(**variables: Any) -> GraphQLRequest:
    return GraphQLRequest(AGENT_EVENTS, variable_values=variables)


async def take(
    stream: AsyncGenerator[dict[str, Any], None], field: str, n: int
) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    async with asyncio.timeout(15):
        async for item in stream:
            got.append(item[field])
            if len(got) == n:
                break
    return got


async def run_one(tenant: TenantClient, agent: str, pk: Any, **given: Any) -> dict[str, Any]:
    """Enqueue, claim and complete a task, as a runtime would."""
    task = await enqueue(tenant, agent, **given)
    runtime = tenant.agent_token(pk)
    (lease,) = await claim(tenant, runtime)
    await tenant.data(
        COMPLETE, {"id": task["id"], "token": lease["leaseToken"], "result": 1}, token=runtime
    )
    return task


async def test_an_agents_tasks_replay_and_resume_in_order(
    tenant: TenantClient, live_url: str
) -> None:
    agent, pk = await new_agent(tenant)
    other, other_pk = await new_agent(tenant, "Other")
    task = await run_one(tenant, agent, pk)
    await run_one(tenant, other, other_pk)
    async with ws_session(live_url, tenant.token(Role.VIEWER)) as session:
        stream = session.subscribe(agent_events(agentId=agent, after="0-0"))
        first = await take(stream, "agentEvents", 1)
    assert first[0]["type"] == "TASK_QUEUED" and first[0]["agent"]["id"] == agent
    async with ws_session(live_url, tenant.token(Role.VIEWER)) as session:
        stream = session.subscribe(agent_events(agentId=agent, after=first[0]["id"]))
        rest = await take(stream, "agentEvents", 2)
    assert [e["type"] for e in rest] == ["TASK_STARTED", "TASK_SUCCEEDED"]
    # The task as it is now, for every event.
    assert {e["task"]["id"] for e in first + rest} == {task["id"]}
    assert {e["task"]["status"] for e in rest} == {"SUCCEEDED"}


async def test_a_runtime_hears_of_new_work_live_and_of_its_own_agent_only(
    tenant: TenantClient, live_url: str, app: Starlette
) -> None:
    agent, pk = await new_agent(tenant)
    other, _ = await new_agent(tenant, "Other")
    async with ws_session(live_url, tenant.agent_token(pk)) as session:
        refused = session.subscribe(agent_events(agentId=other))
        # gql raises the subscription's GraphQL error.
        with pytest.raises(TransportQueryError, match="own agent"):
            await take(refused, "agentEvents", 1)
    async with ws_session(live_url, tenant.agent_token(pk)) as session:
        stream = session.subscribe(agent_events())
        waiting = asyncio.ensure_future(take(stream, "agentEvents", 1))
        await until_subscribed(app.state.hub, tenant.id, 1, "agent")
        await enqueue(tenant, other)
        mine = await enqueue(tenant, agent)
        (heard,) = await waiting
    assert (heard["type"], heard["task"]["id"]) == ("TASK_QUEUED", mine["id"])


async def test_a_campaigns_tasks_reach_its_subscribers(
    tenant: TenantClient, live_url: str, engine: AsyncEngine
) -> None:
    agent, pk = await new_agent(tenant)
    campaign = (await tenant.data(CAMPAIGN))["createCampaign"]["campaign"]["id"]
    await relayed(engine, tenant)  # CREATED, through the outbox, before the tasks' events
    await run_one(tenant, agent, pk)  # no campaign: not the campaign's
    task = await run_one(tenant, agent, pk, campaignId=campaign)
    query = """subscription($campaignId: ID, $after: String) {
      campaignEvents(campaignId: $campaignId, after: $after) { type task { id } } }"""
    async with ws_session(live_url, tenant.token(Role.VIEWER)) as session:
        stream = session.subscribe(
            GraphQLRequest(query, variable_values={"campaignId": campaign, "after": "0-0"})
        )
        received = await take(stream, "campaignEvents", 4)
    assert [e["type"] for e in received] == [
        "CREATED",
        "TASK_QUEUED",
        "TASK_STARTED",
        "TASK_SUCCEEDED",
    ]
    assert [e["task"] for e in received if e["type"] != "CREATED"] == [{"id": task["id"]}] * 3
    # The stock query of campaign dashboards still reads every event, task events included.
    async with ws_session(live_url, tenant.token(Role.VIEWER)) as session:
        stream = session.subscribe(events(campaignId=campaign, after="0-0"))
        assert len(await take(stream, "campaignEvents", 4)) == 4


CAMPAIGN_EVENTS = "subscription { campaignEvents { id type campaign { name } } }"
BUDGET_OF_A_TASKS_CAMPAIGN = (
    "subscription { agentEvents { id task { id campaign { name budget } } } }"
)


@pytest.mark.parametrize(
    ("document", "refused"),
    [
        (CAMPAIGN_EVENTS, "Subscription.campaignEvents"),
        (BUDGET_OF_A_TASKS_CAMPAIGN, "Campaign.budget"),
    ],
    ids=["campaign events", "a field beyond its scope"],
)
async def test_an_agent_token_is_refused_a_subscription_beyond_its_scope_over_websocket(
    tenant: TenantClient, live_url: str, document: str, refused: str
) -> None:
    _, pk = await new_agent(tenant)
    async with ws_session(live_url, tenant.agent_token(pk)) as session:
        with pytest.raises(TransportQueryError) as raised:
            await take(session.subscribe(GraphQLRequest(document)), "x", 1)
    errors = raised.value.errors or []
    assert [e["extensions"]["code"] for e in errors] == ["FORBIDDEN"], errors
    assert refused in errors[0]["message"]


@pytest.mark.parametrize(
    "document", [CAMPAIGN_EVENTS, BUDGET_OF_A_TASKS_CAMPAIGN], ids=["events", "field"]
)
async def test_an_agent_token_is_refused_a_subscription_beyond_its_scope_over_sse(
    tenant: TenantClient, live_url: str, document: str
) -> None:
    _, pk = await new_agent(tenant)
    headers = {
        "Accept": "text/event-stream",
        "Authorization": f"Bearer {tenant.agent_token(pk)}",
    }
    async with httpx.AsyncClient(base_url=f"http://{live_url}", timeout=20) as client:
        response = await client.post("/graphql", json={"query": document}, headers=headers)
    events = sse_events(response.text)
    assert [e["event"] for e in events] == ["next", "complete"], events
    errors = events[0]["data"]["errors"]
    assert [e["extensions"]["code"] for e in errors] == ["FORBIDDEN"], errors
    assert "data" not in events[0]["data"] or events[0]["data"]["data"] is None
