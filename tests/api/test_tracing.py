"""One dashboard query is one trace: the HTTP request, the operation with its parse,
validation and execution, a span per loader batch and the store calls under each, whatever
the page size; and nothing at all is traced when tracing is not configured."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest_asyncio
from httpx import ASGITransport, AsyncClient
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from app.settings import Settings
from app.telemetry import Telemetry
from tests.api.dashboard_data import dashboard_tenant, last_day
from tests.api.test_dashboard_query import DASHBOARD
from tests.support import TenantClient, another_app

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{CALLER_SPAN}-01"


@dataclass
class Traced:
    app: Starlette
    http: AsyncClient
    tenant: TenantClient
    spans: InMemorySpanExporter

    def take(self) -> list[ReadableSpan]:
        finished = list(self.spans.get_finished_spans())
        self.spans.clear()
        return finished


@pytest_asyncio.fixture
async def traced(settings: Settings, engine: AsyncEngine, tmp_path: Path) -> AsyncIterator[Traced]:
    """An app tracing into memory, with a tenant whose six campaigns have an agent,
    engagement, a transaction, history, metrics and similar campaigns."""
    exporter = InMemorySpanExporter()
    telemetry = Telemetry([SimpleSpanProcessor(exporter)])
    async with another_app(settings, tmp_path, telemetry=telemetry) as application:
        transport = ASGITransport(app=application)
        async with AsyncClient(transport=transport, base_url="http://test") as http:
            tenant = await dashboard_tenant(application, engine, http)
            exporter.clear()
            yield Traced(application, http, tenant, exporter)


async def dashboard(traced: Traced, first: int) -> list[ReadableSpan]:
    response = await traced.http.post(
        "/graphql",
        json={"query": DASHBOARD, "variables": {"first": first, **last_day()}},
        headers={
            "Authorization": f"Bearer {traced.tenant.token()}",
            "traceparent": TRACEPARENT,
        },
    )
    assert response.status_code == 200, response.text
    assert not response.json().get("errors"), response.text
    return traced.take()


def by_id(spans: list[ReadableSpan]) -> dict[int, ReadableSpan]:
    return {span.context.span_id: span for span in spans if span.context is not None}


def parent_of(span: ReadableSpan, spans: dict[int, ReadableSpan]) -> ReadableSpan | None:
    return spans.get(span.parent.span_id) if span.parent is not None else None


def ancestors(span: ReadableSpan, spans: dict[int, ReadableSpan]) -> list[str]:
    names = []
    parent = parent_of(span, spans)
    while parent is not None:
        names.append(parent.name)
        parent = parent_of(parent, spans)
    return names


def named(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    [span] = [span for span in spans if span.name == name]
    return span


async def test_the_dashboard_query_is_one_trace_from_the_request_to_each_store_call(
    traced: Traced,
) -> None:
    spans = await dashboard(traced, 6)
    index = by_id(spans)
    # One trace, the caller's: every span in it, and the request's span a child of the
    # caller's span.
    assert {format(span.context.trace_id, "032x") for span in spans if span.context} == {TRACE_ID}
    [request] = [span for span in spans if span.kind is SpanKind.SERVER]
    assert request.parent is not None and request.parent.is_remote
    assert format(request.parent.span_id, "016x") == CALLER_SPAN
    assert request.attributes is not None and request.attributes["http.target"] == "/graphql"
    for span in spans:
        assert span is request or parent_of(span, index) is not None, span.name

    operation = named(spans, "query Dashboard")
    assert parent_of(operation, index) is request
    assert operation.attributes is not None
    assert operation.attributes["graphql.operation.name"] == "Dashboard"
    assert operation.attributes["graphql.operation.type"] == "query"
    assert operation.status.status_code is not StatusCode.ERROR
    for step in ("GraphQL Parsing", "GraphQL Validation", "GraphQL Execution"):
        assert parent_of(named(spans, step), index) is operation, step

    loaders = [span for span in spans if span.attributes and "chimera.loader" in span.attributes]
    stores = {span.attributes["chimera.store"] for span in loaders if span.attributes}
    assert {"PostgreSQL", "Redis"} <= stores, stores
    for span in loaders:
        assert "GraphQL Execution" in ancestors(span, index), span.name
        assert span.attributes is not None and int(str(span.attributes["chimera.batch_size"])) >= 1
    page = [
        s
        for s in loaders
        if s.attributes and s.attributes["chimera.loader"] == "CampaignPageByQueryLoader"
    ]
    assert len(page) == 1
    # Each store call is a span of the maintained instrumentation, under its loader's batch.
    children: dict[int, list[ReadableSpan]] = {}
    for span in spans:
        if span.parent is not None:
            children.setdefault(span.parent.span_id, []).append(span)
    for span in loaders:
        assert span.context is not None and span.attributes is not None
        calls = children.get(span.context.span_id, [])
        systems = {str((call.attributes or {}).get("db.system")) for call in calls}
        if span.attributes["chimera.store"] == "PostgreSQL":
            assert systems == {"postgresql"}, (span.name, [call.name for call in calls])
        if span.attributes["chimera.store"] == "Redis":
            assert systems == {"redis"}, (span.name, [call.name for call in calls])


async def test_a_disabled_instrumentation_leaves_its_store_calls_out_and_the_batches_in(
    settings: Settings, engine: AsyncEngine, tmp_path: Path
) -> None:
    exporter = InMemorySpanExporter()
    telemetry = Telemetry(
        [SimpleSpanProcessor(exporter)], disabled_instrumentations=frozenset({"asyncpg", "nope"})
    )
    async with another_app(settings, tmp_path, telemetry=telemetry) as application:
        transport = ASGITransport(app=application)
        async with AsyncClient(transport=transport, base_url="http://test") as http:
            tenant = await dashboard_tenant(application, engine, http)
            exporter.clear()
            spans = await dashboard(Traced(application, http, tenant, exporter), 6)
    systems = Counter(str(s.attributes.get("db.system")) for s in spans if s.attributes)
    assert systems["postgresql"] == 0, systems
    assert systems["redis"] > 0, systems
    stores = {
        s.attributes["chimera.store"]
        for s in spans
        if s.attributes and "chimera.loader" in s.attributes
    }
    assert {"PostgreSQL", "Redis"} <= stores, stores


async def test_spans_per_request_do_not_grow_with_the_page_size(traced: Traced) -> None:
    small = await dashboard(traced, 3)
    large = await dashboard(traced, 6)
    # At 6 every similar campaign is on the page already; at 3 one more batch fetches those
    # that are not. Otherwise the same spans, and never one per campaign.
    assert len(large) <= len(small), (
        Counter(s.name for s in small),
        Counter(s.name for s in large),
    )
    assert len(large) < 60, Counter(span.name for span in large)


async def test_an_operation_that_fails_is_a_span_with_an_error_status_and_its_codes(
    traced: Traced,
) -> None:
    body = await traced.tenant.gql("query Broken { campaign(id: 12) { nope } }")
    assert body["errors"]
    operation = named(traced.take(), "query Broken")
    assert operation.status.status_code is StatusCode.ERROR
    assert operation.attributes is not None
    assert operation.attributes["graphql.error.codes"] == ("BAD_USER_INPUT",)


async def test_without_otel_configuration_nothing_is_traced(app: Starlette) -> None:
    """The session's app runs with no OTEL_* variables: no provider, no loader tracer, no
    instrumented driver (the hot path pays for none of it)."""
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor

    assert app.state.telemetry is None
    assert app.state.stores.tracer is None
    assert not AsyncPGInstrumentor().is_instrumented_by_opentelemetry  # type: ignore[no-untyped-call]
