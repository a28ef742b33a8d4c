"""A traced write is followed across the outbox: its events carry the write's trace context,
and the relay's publish, the indexer's batch and each subscriber's delivery are spans linked
to the write (app/telemetry/event_links.py).

The app here relays a database of its own, with spans kept in memory: the session app's
relay, on the session database, would publish these events untraced before this one could.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest_asyncio
from httpx import ASGITransport, AsyncClient
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from sqlalchemy import select
from starlette.applications import Starlette

from app.auth import Role
from app.ids import decode_id
from app.indexing.indexer import run_once
from app.lifespan import Stores
from app.settings import Settings
from app.stores.postgres.tables import outbox
from app.stores.redis import keys
from app.telemetry import Telemetry
from tests.api.subscriptions_client import events, ws_session
from tests.api.test_subscriptions import new_campaign
from tests.engines import migrated_engine
from tests.serving import served
from tests.support import TenantClient, another_app, new_tenant

WRITE_TRACE = "0af7651916cd43dd8448eb211c80319c"
CALLER_SPAN = "b7ad6b7169203331"


def traceparent(sampled: bool = True) -> str:
    return f"00-{WRITE_TRACE}-{CALLER_SPAN}-{'01' if sampled else '00'}"


@dataclass
class TracedOutbox:
    app: Starlette
    tenant: TenantClient
    spans: InMemorySpanExporter

    @property
    def stores(self) -> Stores:
        stores: Stores = self.app.state.stores
        return stores

    async def spans_until(
        self, found: Callable[[list[ReadableSpan]], bool], timeout: float = 15
    ) -> list[ReadableSpan]:
        async with asyncio.timeout(timeout):
            while True:
                spans = list(self.spans.get_finished_spans())
                if found(spans):
                    return spans
                await asyncio.sleep(0.02)

    async def written(self, campaign_id: str) -> list[Any]:
        async with self.stores.engine.connect() as conn:
            return list(
                await conn.execute(
                    select(outbox.c.id, outbox.c.event_type, outbox.c.traceparent)
                    .where(outbox.c.aggregate_id == decode_id(campaign_id, "Campaign"))
                    .order_by(outbox.c.id)
                )
            )


@pytest_asyncio.fixture
async def traced_outbox(
    settings: Settings, pg_server_url: str, tmp_path: Path
) -> AsyncIterator[TracedOutbox]:
    exporter = InMemorySpanExporter()
    async with (
        migrated_engine(pg_server_url, "chimera_traces") as own,
        another_app(
            settings,
            tmp_path,
            telemetry=Telemetry([SimpleSpanProcessor(exporter)]),
            database_url=own.url.render_as_string(hide_password=False),
            relay_enabled=True,
        ) as application,
    ):
        transport = ASGITransport(app=application)
        async with AsyncClient(transport=transport, base_url="http://test") as http:
            tenant = await new_tenant(application.state.stores.engine, http)
            yield TracedOutbox(application, tenant, exporter)


UPDATE = """mutation Rename($id: ID!, $n: String!) {
  updateCampaign(input: {id: $id, name: $n}) { campaign { id } } }"""


async def rename(outbox: TracedOutbox, campaign_id: str, header: str) -> None:
    response = await outbox.tenant.http.post(
        "/graphql",
        json={"query": UPDATE, "variables": {"id": campaign_id, "n": "Renamed"}},
        headers={"Authorization": f"Bearer {outbox.tenant.token()}", "traceparent": header},
    )
    assert response.status_code == 200 and not response.json().get("errors"), response.text


def span_by_id(spans: list[ReadableSpan], span_id: int) -> ReadableSpan:
    [span] = [s for s in spans if s.context is not None and s.context.span_id == span_id]
    return span


def named(spans: list[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [span for span in spans if span.name == name]


def in_write_trace(span: ReadableSpan) -> bool:
    return span.context is not None and format(span.context.trace_id, "032x") == WRITE_TRACE


def linked_events(span: ReadableSpan) -> dict[int, Any]:
    """Each event id the span links to, with the linked span context."""
    return {
        int(str(link.attributes["chimera.event.id"])): link.context
        for link in span.links
        if link.attributes and "chimera.event.id" in link.attributes
    }


async def test_a_write_is_followed_to_the_relay_the_indexer_and_each_subscriber(
    traced_outbox: TracedOutbox,
) -> None:
    outbox = traced_outbox
    redis = outbox.stores.redis
    campaign_id = await new_campaign(outbox.tenant, "Followed")
    host_ready = served(outbox.app)
    async with host_ready as host, ws_session(host, outbox.tenant.token(Role.VIEWER)) as session:
        stream = session.subscribe(events(campaignId=campaign_id, after="0-0"))
        # The CREATED event, replayed: the subscription is registered for live events now.
        created = await asyncio.wait_for(anext(stream), 15)
        assert created["campaignEvents"]["type"] == "CREATED"
        await rename(outbox, campaign_id, traceparent())
        changed = await asyncio.wait_for(anext(stream), 15)
        assert changed["campaignEvents"]["type"] == "UPDATED"
        await stream.aclose()

    # The event stored the trace context of the write: a span of the mutation's execution.
    [event_id, _type, stored] = (await outbox.written(campaign_id))[-1]
    assert stored is not None and stored.split("-")[1] == WRITE_TRACE
    # The delivery may end before the relay's span does: the relay ends its span after
    # marking the batch, the subscriber may have been sent the event before that.
    spans = await outbox.spans_until(
        lambda spans: (
            any(s.name == "deliver campaignEvents" and in_write_trace(s) for s in spans)
            and any(s.name == "outbox publish" and event_id in linked_events(s) for s in spans)
        )
    )
    write_span = span_by_id(spans, int(stored.split("-")[2], 16))
    assert in_write_trace(write_span)
    mutation = named(spans, "mutation Rename")
    assert write_span.parent is not None and mutation[-1].context is not None
    assert write_span.parent.span_id == mutation[-1].context.span_id

    # The stream entry carries it to the subscribers.
    entries: Any = await redis.xrange(
        keys.event_stream(outbox.tenant.id), min=changed["campaignEvents"]["id"], count=1
    )
    [(_id, fields)] = entries
    assert fields[b"tp"].decode() == stored

    # The relay's publish: a trace of its own, linked to the write, the Redis script under it.
    [publish] = [s for s in named(spans, "outbox publish") if event_id in linked_events(s)]
    assert publish.kind is SpanKind.CONSUMER and publish.parent is None
    assert linked_events(publish)[event_id].span_id == write_span.context.span_id
    assert any(
        s.parent is not None
        and publish.context is not None
        and s.parent.span_id == publish.context.span_id
        and (s.attributes or {}).get("db.system") == "redis"
        for s in spans
    ), [s.name for s in spans]

    # The delivery: in the write's trace, a child of the write's span, linked to the
    # subscription it was delivered to.
    [delivery] = [s for s in named(spans, "deliver campaignEvents") if in_write_trace(s)]
    assert delivery.parent is not None and delivery.parent.span_id == write_span.context.span_id
    assert delivery.attributes is not None
    assert delivery.attributes["chimera.event.id"] == event_id
    assert delivery.attributes["messaging.message.id"] == changed["campaignEvents"]["id"]
    assert delivery.attributes["chimera.event.replayed"] is False
    [subscription] = delivery.links
    assert subscription.context.trace_id != write_span.context.trace_id
    assert span_by_id(spans, subscription.context.span_id).name.startswith("subscription")
    # The replayed CREATED event was delivered in its own write's trace.
    [replay] = [
        s
        for s in named(spans, "deliver campaignEvents")
        if (s.attributes or {}).get("chimera.event.replayed") is True
    ]
    assert not in_write_trace(replay)

    # The indexer's batch: linked to the writes of the events it embedded.
    stores = outbox.stores
    assert stores.embedder is not None, stores.embedder_error
    assert await run_once(stores.engine, stores.vectors, stores.embedder, tracer=stores.tracer)
    [indexed] = named(list(outbox.spans.get_finished_spans()), "outbox index")
    assert indexed.parent is None and event_id in linked_events(indexed)
    assert linked_events(indexed)[event_id].span_id == write_span.context.span_id


async def test_a_write_that_was_not_sampled_costs_its_consumers_no_span(
    traced_outbox: TracedOutbox,
) -> None:
    outbox = traced_outbox
    campaign_id = await new_campaign(outbox.tenant, "Unsampled")
    outbox.spans.clear()
    await rename(outbox, campaign_id, traceparent(sampled=False))
    [*_, (event_id, event_type, stored)] = await outbox.written(campaign_id)
    assert event_type == "UPDATED" and stored is None
    # Published (untraced) like any other event, and nothing linked to it.
    marker = keys.published_marker(outbox.tenant.id, event_id)
    async with asyncio.timeout(15):
        while True:
            if await outbox.stores.redis.get(marker) is not None:
                break
            await asyncio.sleep(0.02)
    assert not [s for s in outbox.spans.get_finished_spans() if event_id in linked_events(s)]
