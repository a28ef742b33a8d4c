"""/metrics: the service's metrics as Prometheus text, scraped and parsed as Prometheus
would, moving as requests, store calls, caches, the relay and refusals happen."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path

from httpx import ASGITransport, AsyncClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine

from app.auth import Role
from app.settings import Environment, Settings
from app.telemetry.metrics import MAX_OPERATION_NAMES, OTHER, OperationNames
from tests.api.subscriptions_client import events, ws_session
from tests.api.test_subscriptions import STATUS, new_campaign, relayed, take
from tests.support import another_app, new_tenant

OPEN = "chimera_subscriptions_open"
DELIVERED = "chimera_subscriptions_events_delivered_total"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(http: AsyncClient, token: str | None = None) -> Samples:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = await http.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


async def scrape_until(
    http: AsyncClient, condition: Callable[[Samples], bool], token: str | None = None
) -> Samples:
    """Scrape until ``condition`` holds of the samples (at most 10 s)."""
    for _ in range(200):
        samples = await scrape(http, token)
        if condition(samples):
            return samples
        await asyncio.sleep(0.05)
    raise AssertionError("the metrics never showed what was expected")


def total(samples: Samples, name: str, **labels: str) -> float:
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return total(after, name, **labels) - total(before, name, **labels)


async def test_a_query_moves_the_request_store_and_batch_metrics(
    http: AsyncClient, engine: AsyncEngine
) -> None:
    tenant = await new_tenant(engine, http)
    await tenant.data(
        'mutation { createCampaign(input: {name: "Spring", budget: "10"}) { campaign { id } } }'
    )
    before = await scrape(http)
    await tenant.data(
        "query Names { campaigns(first: 3) { edges { node { name agents(first: 2) { totalCount } } } } }"
    )
    after = await scrape(http)

    request = {"graphql_operation_name": "Names", "graphql_operation_type": "query"}
    assert (
        delta(
            before, after, "chimera_graphql_request_duration_seconds_count", outcome="ok", **request
        )
        == 1
    )
    assert delta(before, after, "chimera_graphql_request_duration_seconds_sum", **request) > 0
    assert (
        delta(
            before,
            after,
            "chimera_store_call_duration_seconds_count",
            store="PostgreSQL",
            loader="CampaignPageByQueryLoader",
        )
        == 1
    )
    assert (
        delta(before, after, "chimera_loader_batch_size_count", loader="AgentCountByCampaignLoader")
        == 1
    )
    assert (
        delta(before, after, "chimera_loader_batch_size_sum", loader="AgentCountByCampaignLoader")
        == 1
    )


async def test_refusals_are_counted_by_code_and_as_rejected_requests(
    http: AsyncClient, engine: AsyncEngine
) -> None:
    tenant = await new_tenant(engine, http)
    before = await scrape(http)
    # 100 campaigns x 100 agents x their campaigns: far over the operation maximum.
    body = await tenant.gql(
        "query Greedy { campaigns(first: 100) { edges { node { agents(first: 100) { edges "
        "{ node { campaigns(first: 100) { totalCount } } } } } } } }"
    )
    assert body["errors"][0]["extensions"]["code"] == "COST_LIMIT"
    after = await scrape(http)
    assert delta(before, after, "chimera_graphql_rejections_total", code="COST_LIMIT") == 1
    assert (
        delta(
            before,
            after,
            "chimera_graphql_request_duration_seconds_count",
            outcome="rejected",
            graphql_operation_name="Greedy",
        )
        == 1
    )


async def test_the_relay_and_the_similar_cache_are_measured(
    http: AsyncClient, engine: AsyncEngine
) -> None:
    tenant = await new_tenant(engine, http)
    before = await scrape(http)
    created = await tenant.data(
        'mutation { createCampaign(input: {name: "Relay", budget: "1"}) { campaign { id } } }'
    )
    campaign = created["createCampaign"]["campaign"]["id"]
    for _ in range(2):
        await tenant.data(
            "query($id: ID!) { campaign(id: $id) { similar(limit: 2) { score } } }",
            {"id": campaign},
        )
    # The session's app relays: the write's events were published, each with its lag.
    after = await scrape_until(
        http, lambda now: delta(before, now, "chimera_outbox_published_total") >= 1
    )
    assert delta(before, after, "chimera_outbox_relay_lag_seconds_count") >= 1
    assert ("chimera_outbox_backlog", frozenset()) in after
    lookups = delta(before, after, "chimera_cache_lookups_total", cache="similar")
    assert lookups == 2, lookups


async def test_metrics_need_the_token_when_one_is_set_and_are_absent_in_production_without(
    settings: Settings, tmp_path: Path
) -> None:
    token = uuid.uuid4().hex
    async with (
        another_app(settings, tmp_path / "a", metrics_token=SecretStr(token)) as application,
        AsyncClient(transport=ASGITransport(app=application), base_url="http://t") as http,
    ):
        refused = await http.get("/metrics")
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith("Bearer")
        assert (
            await http.get("/metrics", headers={"Authorization": "Bearer nope"})
        ).status_code == 401
        # The app's refresher reads the backlog at start; a scrape serves what it read.
        samples = await scrape_until(
            http, lambda now: ("chimera_outbox_backlog", frozenset()) in now, token
        )
        assert ("chimera_outbox_backlog", frozenset()) in samples
    async with (
        another_app(settings, tmp_path / "b", env=Environment.PRODUCTION) as application,
        AsyncClient(transport=ASGITransport(app=application), base_url="http://t") as http,
    ):
        absent = await http.get("/metrics")
        assert absent.status_code == 404
        assert "CHIMERA_METRICS_TOKEN" in absent.json()["error"]


async def test_open_subscriptions_and_delivered_events_are_counted(
    http: AsyncClient, engine: AsyncEngine, live_url: str
) -> None:
    tenant = await new_tenant(engine, http)
    campaign = await new_campaign(tenant)
    await relayed(engine, tenant)
    before = await scrape(http)
    async with ws_session(live_url, tenant.token(Role.VIEWER)) as session:
        stream = session.subscribe(events(campaignId=campaign))
        receiving = asyncio.create_task(take(stream, 1))
        await scrape_until(http, lambda now: delta(before, now, OPEN) == 1)
        await tenant.data(STATUS, {"id": campaign, "s": "ACTIVE"})
        await receiving
        during = await scrape_until(http, lambda now: delta(before, now, DELIVERED) >= 1)
    assert delta(before, during, OPEN, stream="campaign") == 1
    assert delta(before, during, DELIVERED, stream="campaign", replayed="false") == 1
    # The socket closed: the subscription is no longer open.
    await scrape_until(http, lambda now: delta(before, now, OPEN) == 0)


def test_operation_names_are_bounded_so_clients_cannot_grow_the_series() -> None:
    names = OperationNames()
    labels = {names.label(f"Op{i}") for i in range(MAX_OPERATION_NAMES + 50)}
    assert len(labels) == MAX_OPERATION_NAMES + 1
    assert names.label(f"Op{MAX_OPERATION_NAMES + 7}") == OTHER
    assert names.label("Op3") == "Op3"
    assert names.label(None) == "anonymous"
