"""Traces leave the process the standard way: the OTLP exporters the ``OTEL_*`` variables
name, over HTTP (protobuf) and gRPC, received here by real servers and decoded."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from httpx import ASGITransport, AsyncClient
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from pytest_httpserver import HTTPServer
from sqlalchemy.ext.asyncio import AsyncEngine

from app.settings import Settings
from app.telemetry import telemetry_from_environment
from tests.support import another_app, new_tenant

Request = trace_service_pb2.ExportTraceServiceRequest


def exported(requests: list[Any]) -> tuple[set[str], set[str]]:
    """The service names and span names in OTLP export requests."""
    services: set[str] = set()
    names: set[str] = set()
    for request in requests:
        for resource_spans in request.resource_spans:
            for attribute in resource_spans.resource.attributes:
                if attribute.key == "service.name":
                    services.add(attribute.value.string_value)
            for scope_spans in resource_spans.scope_spans:
                names.update(span.name for span in scope_spans.spans)
    return services, names


async def run_one_query(settings: Settings, engine: AsyncEngine, tmp_path: Path) -> None:
    telemetry = telemetry_from_environment()
    assert telemetry is not None
    async with (
        another_app(settings, tmp_path, telemetry=telemetry) as application,
        AsyncClient(transport=ASGITransport(app=application), base_url="http://test") as http,
    ):
        tenant = await new_tenant(engine, http)
        await tenant.data("query Names { campaigns(first: 3) { edges { node { name } } } }")
    # The app has stopped: its provider flushed the batch on the way out.


async def test_spans_are_exported_over_otlp_http(
    settings: Settings,
    engine: AsyncEngine,
    tmp_path: Path,
    httpserver: HTTPServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    httpserver.expect_request("/v1/traces", method="POST").respond_with_data(
        b"", content_type="application/x-protobuf"
    )
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", httpserver.url_for("/").rstrip("/"))
    monkeypatch.setenv("OTEL_SERVICE_NAME", "chimera-under-test")
    await run_one_query(settings, engine, tmp_path)

    received = [request for request, _ in httpserver.log if request.path == "/v1/traces"]
    assert received, "nothing was exported"
    assert {request.headers["Content-Type"] for request in received} == {"application/x-protobuf"}
    decoded = []
    for request in received:
        message = Request()
        message.ParseFromString(request.get_data())
        decoded.append(message)
    services, names = exported(decoded)
    assert services == {"chimera-under-test"}
    assert {"POST /graphql", "query Names", "GraphQL Execution"} <= names, names


class Collector(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.requests: list[Any] = []

    def Export(self, request: Any, context: Any) -> Any:
        self.requests.append(request)
        return trace_service_pb2.ExportTraceServiceResponse()


@pytest.fixture
def collector() -> Iterator[tuple[Collector, int]]:
    """An OTLP/gRPC trace collector on loopback."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = Collector()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield servicer, port
    finally:
        server.stop(grace=None)


async def test_spans_are_exported_over_otlp_grpc(
    settings: Settings,
    engine: AsyncEngine,
    tmp_path: Path,
    collector: tuple[Collector, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    servicer, port = collector
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_INSECURE", "true")
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    await run_one_query(settings, engine, tmp_path)

    services, names = exported(servicer.requests)
    assert services == {"chimera"}  # the default when OTEL_SERVICE_NAME is not set
    assert {"POST /graphql", "query Names", "GraphQL Execution"} <= names, names
