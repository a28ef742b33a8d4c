"""Demand control over HTTP: every operation priced before it runs, refused when too dear or
when its tenant's or client's bucket cannot pay, and told what it cost afterwards."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
from httpx import AsyncClient, Response
from redis.asyncio import Redis
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from app.extensions.demand_control import Unmetered
from app.ratelimit.buckets import Buckets, tenant_bucket
from app.stores.postgres.tables import tenant as tenant_table
from tests.api import raw_ws
from tests.api.hub_state import subscribers_of, until
from tests.api.test_subscriptions import STATUS, new_campaign
from tests.support import (
    HEALTH_TOKEN,
    TenantClient,
    count_redis_round_trips,
    count_statements,
    error_codes,
)

PAGE = "query($n: Int!) { campaigns(first: $n) { edges { node { id name } } } }"
GREEDY = """{ campaigns(first: 100) { edges { node { id
  agents(first: 100) { edges { node { id activeTasks } } }
  media(first: 100) { edges { node { url } } }
  similar(limit: 10) { score campaign { id } } } } } }"""


async def set_limits(
    app: Starlette, engine: AsyncEngine, tenant_id: uuid.UUID, **limits: Any
) -> None:
    """Override a tenant's limits in its row, as `chimera tenant limits` does, and make the
    app read them on the tenant's next request instead of within the minute."""
    async with engine.begin() as conn:
        await conn.execute(
            update(tenant_table).where(tenant_table.c.id == tenant_id).values(**limits)
        )
    app.state.tenants.forget(tenant_id)
    redis = app.state.stores.redis
    await redis.delete(tenant_bucket(tenant_id))


async def make_campaigns(tenant: TenantClient, count: int) -> None:
    for i in range(count):
        await tenant.data(
            "mutation($n: String!) { createCampaign(input: {name: $n}) { campaign { id } } }",
            {"n": f"c{i}"},
        )


async def test_every_response_says_what_it_was_priced_at_and_what_it_really_cost(
    tenant: TenantClient,
) -> None:
    await make_campaigns(tenant, 2)
    body = await tenant.gql(PAGE, {"n": 50})
    cost = body["extensions"]["cost"]
    # The connection (1) and, for each of 50 asked-for edges, the edge and its campaign.
    assert cost["requested"] == 1 + 50 * 2
    assert cost["actual"] == 1 + 2 * 2  # two campaigns came back
    assert cost["byStore"] == {"POSTGRES": {"requested": 101, "actual": 5}}
    assert cost["maximum"] == 10_000
    assert cost["limit"] > 0 and 0 <= cost["remaining"] <= cost["limit"]
    assert cost["resetAt"].endswith("+00:00")
    assert {b["scope"] for b in cost["buckets"]} == {"TENANT", "CLIENT"}


async def test_variables_set_the_price_of_the_same_document(tenant: TenantClient) -> None:
    small = (await tenant.gql(PAGE, {"n": 1}))["extensions"]["cost"]["requested"]
    large = (await tenant.gql(PAGE, {"n": 100}))["extensions"]["cost"]["requested"]
    assert (small, large) == (3, 201)


async def test_an_operation_priced_over_the_maximum_is_refused_before_any_store_is_touched(
    tenant: TenantClient, engine: AsyncEngine
) -> None:
    with count_statements(engine) as sql, count_redis_round_trips() as redis:
        response = await tenant.post(GREEDY)
    body = response.json()
    assert response.status_code == 200
    assert error_codes(body) == ["COST_LIMIT"]
    assert body["data"] is None
    error = body["errors"][0]
    assert error["extensions"]["maximum"] == 10_000
    assert error["extensions"]["requested"] > 10_000
    assert "priced at" in error["message"]
    assert body["extensions"]["cost"]["requested"] == error["extensions"]["requested"]
    assert body["extensions"]["cost"]["actual"] is None
    assert sql.count == 0
    assert redis.count == 0


async def exhaust(tenant: TenantClient, token: str | None = None) -> tuple[int, Response]:
    """Ask for the tenant's 10 campaigns until refused: each request really costs 21."""
    for served in range(60):
        response = await tenant.post(PAGE, {"n": 10}, token=token)
        if response.status_code != 200:
            return served, response
        assert response.json()["extensions"]["cost"]["actual"] == 21
    raise AssertionError("never throttled")


async def test_a_tenant_over_its_budget_gets_429_with_retry_after_and_nothing_runs(
    app: Starlette, engine: AsyncEngine, tenant: TenantClient
) -> None:
    await make_campaigns(tenant, 10)
    await set_limits(app, engine, tenant.id, rate_capacity=150, rate_per_second=0.5)
    served, throttled = await exhaust(tenant)
    assert 6 <= served <= 8  # 150 points at 21 a request, and what half a point a second adds
    assert throttled.status_code == 429
    body = throttled.json()
    assert error_codes(body) == ["RATE_LIMITED"]
    assert body["data"] is None
    retry_after = body["errors"][0]["extensions"]["retryAfter"]
    assert 0 < retry_after <= 21 / 0.5
    assert int(throttled.headers["retry-after"]) >= retry_after
    assert throttled.headers["ratelimit-policy"].startswith('"tenant";q=150;w=300')
    assert '"tenant";r=' in throttled.headers["ratelimit"]
    assert body["extensions"]["cost"]["throttled"] is True
    with count_statements(engine) as sql:
        again = await tenant.post(PAGE, {"n": 10})
        # The same refusal in the specification's media type: a request error, so no data.
        spec = await tenant.http.post(
            "/graphql",
            json={"query": PAGE, "variables": {"n": 10}},
            headers={
                "Authorization": f"Bearer {tenant.token()}",
                "Accept": "application/graphql-response+json",
            },
        )
    assert again.status_code == 429
    assert spec.status_code == 429
    assert spec.headers["content-type"].startswith("application/graphql-response+json")
    assert "retry-after" in spec.headers
    assert "data" not in spec.json()
    assert error_codes(spec.json()) == ["RATE_LIMITED"]
    assert sql.count == 0


async def test_what_a_response_did_not_spend_is_given_back(
    app: Starlette, engine: AsyncEngine, tenant: TenantClient
) -> None:
    await set_limits(app, engine, tenant.id, rate_capacity=1000, rate_per_second=0.001)
    cost = (await tenant.gql(PAGE, {"n": 100}))["extensions"]["cost"]
    assert cost["requested"] == 201 and cost["actual"] == 1  # no campaigns: the page only
    assert cost["remaining"] == 1000 - 1  # charged 201, given 200 back
    # The refund reached Redis with the next charge: that request sees it.
    again = (await tenant.gql("{ rateLimit { remaining cost } }"))["data"]["rateLimit"]
    assert again == {"cost": 0, "remaining": 999}


async def test_each_client_has_its_own_bucket_within_the_tenants(
    app: Starlette, engine: AsyncEngine, tenant: TenantClient
) -> None:
    await make_campaigns(tenant, 10)
    await set_limits(app, engine, tenant.id, client_rate_capacity=100, client_rate_per_second=0.5)
    greedy, patient = tenant.token_as("greedy"), tenant.token_as("patient")
    served, throttled = await exhaust(tenant, greedy)
    assert 4 <= served <= 5
    assert '"client";q=100' in throttled.headers["ratelimit-policy"]
    assert "client" in throttled.json()["errors"][0]["message"]
    assert (await tenant.post(PAGE, {"n": 10}, token=patient)).status_code == 200


async def test_one_tenant_exhausting_its_budget_leaves_another_untouched(
    app: Starlette, engine: AsyncEngine, tenant: TenantClient, other_tenant: TenantClient
) -> None:
    await make_campaigns(tenant, 10)
    await set_limits(app, engine, tenant.id, rate_capacity=100, rate_per_second=0.5)
    _, throttled = await exhaust(tenant)
    assert throttled.status_code == 429
    response = await other_tenant.post(PAGE, {"n": 50})
    assert response.status_code == 200
    buckets = response.json()["extensions"]["cost"]["buckets"]
    limits = app.state.settings
    assert {b["scope"]: b["limit"] for b in buckets} == {
        "TENANT": limits.tenant_rate_capacity,
        "CLIENT": limits.client_rate_capacity,
    }


async def test_rate_limit_field_shows_the_callers_buckets_without_a_store_call(
    app: Starlette, engine: AsyncEngine, tenant: TenantClient
) -> None:
    await set_limits(app, engine, tenant.id, max_cost=500, rate_capacity=5000, rate_per_second=50)
    data = await tenant.data(
        """{ rateLimit { cost maximumCost limit remaining resetAt restoreRate
             buckets { scope limit remaining restoreRate resetAt } }
           campaigns(first: 10) { totalCount } }"""
    )
    limit = data["rateLimit"]
    assert limit["cost"] == 2  # the connection and its count; rateLimit itself is free
    assert limit["maximumCost"] == 500
    assert limit["limit"] == 5000 and limit["remaining"] == 5000 - 2
    assert limit["restoreRate"] == 50.0
    assert {b["scope"]: b["limit"] for b in limit["buckets"]} == {
        "TENANT": 5000,
        "CLIENT": app.state.settings.client_rate_capacity,
    }


async def test_a_tenants_lower_maximum_cost_refuses_what_the_default_would_serve(
    app: Starlette, engine: AsyncEngine, tenant: TenantClient
) -> None:
    await set_limits(app, engine, tenant.id, max_cost=100)
    body = await tenant.gql(PAGE, {"n": 50})
    assert error_codes(body) == ["COST_LIMIT"]
    assert body["errors"][0]["extensions"]["maximum"] == 100


async def test_unauthenticated_requests_are_neither_priced_nor_charged(http: AsyncClient) -> None:
    response = await http.post("/graphql", json={"query": "{ viewer { role } }"})
    body = response.json()
    assert error_codes(body) == ["UNAUTHENTICATED"]
    assert "cost" not in (body.get("extensions") or {})
    assert "ratelimit" not in response.headers


async def test_a_subscription_spends_its_clients_budget_per_event_and_ends_when_it_is_spent(
    app: Starlette, engine: AsyncEngine, tenant: TenantClient, live_url: str
) -> None:
    campaign_id = await new_campaign(tenant)
    await set_limits(app, engine, tenant.id, client_rate_capacity=12, client_rate_per_second=0.01)
    watcher = tenant.token_as("watcher")
    ws = await raw_ws.open_socket(live_url, watcher)
    try:
        await raw_ws.subscribe(ws, "live", campaignId=campaign_id)
        await until(lambda: subscribers_of(app.state.hub, tenant.id) == 1)
        # The subscription was charged 2 when it started (an event and its campaign); each
        # event costs 2 as delivered: five of them fit in what is left of 12. (Each change
        # is made by a client of its own, with a bucket of its own.)
        received: list[dict[str, Any]] = []
        status = "ACTIVE"
        async with asyncio.timeout(30):
            while True:
                writer = tenant.token_as(f"writer-{len(received)}")
                await tenant.data(STATUS, {"id": campaign_id, "s": status}, token=writer)
                status = "PAUSED" if status == "ACTIVE" else "ACTIVE"
                message = await raw_ws.receive(ws)
                received.append(message)
                if message["type"] != "next":
                    break
        delivered, final = received[:-1], received[-1]
        assert len(delivered) == 5, received
        assert all(m["payload"]["extensions"]["cost"]["actual"] == 2 for m in delivered)
        assert final["type"] == "error"
        error = final["payload"][0]
        assert error["extensions"]["code"] == "RATE_LIMITED"
        assert error["extensions"]["retryAfter"] > 0
        await until(lambda: subscribers_of(app.state.hub, tenant.id) == 0)
    finally:
        await ws.close()


async def test_a_subscription_dearer_than_an_operation_may_cost_is_refused_before_it_starts(
    app: Starlette, engine: AsyncEngine, tenant: TenantClient, live_url: str
) -> None:
    campaign_id = await new_campaign(tenant)
    # A subscription is priced at 2 when it starts (an event and its campaign): more than
    # one operation may cost with a bucket of 1.
    await set_limits(app, engine, tenant.id, client_rate_capacity=1, client_rate_per_second=0.01)
    ws = await raw_ws.open_socket(live_url, tenant.token_as("watcher"))
    try:
        await raw_ws.subscribe(ws, "live", campaignId=campaign_id)
        message = await asyncio.wait_for(raw_ws.receive(ws), 20)
        assert message["type"] == "error", message
        assert message["payload"][0]["extensions"]["code"] == "COST_LIMIT", message
        # Refused, not started: no subscriber reached the tenant's stream.
        await asyncio.sleep(0.3)
        assert subscribers_of(app.state.hub, tenant.id) == 0
    finally:
        await ws.close()


@pytest_asyncio.fixture
async def buckets_unreachable(app: Starlette) -> AsyncIterator[Starlette]:
    """The app with its rate-limit buckets on a Redis that refuses connections."""
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    stores = app.state.stores
    kept, mode = stores.buckets, app.state.settings.rate_limit_when_redis_down
    dead = Redis.from_url(f"redis://127.0.0.1:{port}/0", socket_connect_timeout=0.5)
    stores.buckets = Buckets(dead, timeout=1.0)
    try:
        yield app
    finally:
        stores.buckets = kept
        app.state.settings.rate_limit_when_redis_down = mode
        await dead.aclose()


CREATE_CAMPAIGN = 'mutation { createCampaign(input: {name: "x"}) { campaign { id } } }'


async def test_with_the_buckets_unreachable_reads_are_served_unmetered_and_writes_refused(
    buckets_unreachable: Starlette, tenant: TenantClient
) -> None:
    served_before = Unmetered.served
    read = await tenant.post(PAGE, {"n": 5})
    assert read.status_code == 200
    body = read.json()
    assert "errors" not in body
    assert body["extensions"]["cost"]["requested"] == 11
    assert body["extensions"]["cost"]["remaining"] is None  # nothing to say: not metered
    assert "ratelimit" not in read.headers
    assert Unmetered.served == served_before + 1
    write = await tenant.gql(CREATE_CAMPAIGN)
    assert error_codes(write) == ["STORE_UNAVAILABLE"]
    assert write["data"] is None
    ready = await tenant.http.get("/readyz", headers={"Authorization": f"Bearer {HEALTH_TOKEN}"})
    assert ready.json()["rateLimits"] == {
        "unmetered": Unmetered.served,
        "refused": Unmetered.refused,
    }
    assert Unmetered.refused >= 1


async def test_the_redis_down_policy_can_open_or_close_everything(
    buckets_unreachable: Starlette, tenant: TenantClient
) -> None:
    settings = buckets_unreachable.state.settings
    settings.rate_limit_when_redis_down = "open"
    assert not (await tenant.gql(CREATE_CAMPAIGN)).get("errors")
    settings.rate_limit_when_redis_down = "closed"
    assert error_codes(await tenant.gql(PAGE, {"n": 5})) == ["STORE_UNAVAILABLE"]
