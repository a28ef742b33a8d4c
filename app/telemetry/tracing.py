"""The tracer provider of one app, its exporters, and the instrumented store clients.

One ``Telemetry`` per app, started and stopped by its lifespan: the instrumentations patch
the asyncpg, redis-py and aiohttp modules for the process while it runs, with this app's
provider, and are removed when it stops (so a test's app traces into the test's exporter
and leaves nothing behind). Nothing is global: the OpenTelemetry API's global provider is
left alone, and everything that makes spans is handed this provider's tracer, or nothing
at all when tracing is off.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from importlib import import_module
from typing import Any

from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.trace import Tracer

from app.telemetry.environment import TraceExport, disabled_instrumentations, trace_export

log = logging.getLogger("chimera.telemetry")

SERVICE = "chimera"
# Probes and scrapes would be most of the traces and say nothing.
EXCLUDED_URLS = "/healthz,/readyz,/metrics"


def _exporter(name: str, protocol: str) -> SpanExporter:
    if name == "console":
        return ConsoleSpanExporter()
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcSpanExporter,
        )

        return GrpcSpanExporter()
    from app.telemetry.otlp_http import OTLPHttpSpanExporter

    return OTLPHttpSpanExporter()


# The store clients' maintained instrumentations, by their entry point names (as
# OTEL_PYTHON_DISABLED_INSTRUMENTATIONS gives them): module and class, imported only when used.
_INSTRUMENTORS = {
    "asyncpg": ("asyncpg", "AsyncPGInstrumentor"),  # PostgreSQL, pgvector's searches included
    "redis": ("redis", "RedisInstrumentor"),
    "aiohttp-client": ("aiohttp_client", "AioHttpClientInstrumentor"),  # S3 (aiobotocore)
    # Weaviate: searches and batch writes over gRPC (channels opened after instrumenting, as
    # the stores are), its schema and tenants over REST (httpx).
    "grpc_aio_client": ("grpc", "GrpcAioInstrumentorClient"),
    "httpx": ("httpx", "HTTPXClientInstrumentor"),
}
# Only Weaviate's client speaks these: without it, importing grpc is start-up time for nothing.
WEAVIATE_CLIENTS = frozenset({"grpc_aio_client", "httpx"})


def _instrumentors(disabled: frozenset[str]) -> list[BaseInstrumentor]:
    """The store clients' instrumentations, but those ``disabled`` (or all, with ``*``)."""
    if "*" in disabled:
        return []
    return [
        getattr(import_module(f"opentelemetry.instrumentation.{module}"), name)()
        for key, (module, name) in _INSTRUMENTORS.items()
        if key not in disabled
    ]


class Telemetry:
    """Traces for one app: ``processors`` receive its spans (tests pass an in-memory
    exporter's; ``telemetry_from_environment`` the configured exporters')."""

    def __init__(
        self,
        processors: Sequence[SpanProcessor],
        *,
        disabled_instrumentations: frozenset[str] = frozenset(),
    ) -> None:
        attributes: dict[str, Any] = {}
        if not os.environ.get("OTEL_SERVICE_NAME"):
            attributes[SERVICE_NAME] = SERVICE
        # The sampler comes from OTEL_TRACES_SAMPLER (default: parent-based, always on),
        # the resource from OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES.
        self.provider = TracerProvider(resource=Resource.create(attributes))
        for processor in processors:
            self.provider.add_span_processor(processor)
        self._instrumented: list[BaseInstrumentor] = []
        self._disabled = disabled_instrumentations

    def tracer(self, name: str) -> Tracer:
        return self.provider.get_tracer(name)

    def start(self, *, weaviate: bool = True) -> None:
        """Instrument the store clients for this app's provider (Weaviate's transports only
        when it uses Weaviate)."""
        unused = frozenset() if weaviate else WEAVIATE_CLIENTS
        for instrumentor in _instrumentors(self._disabled | unused):
            if instrumentor.is_instrumented_by_opentelemetry:
                # Another app of this process traces already (two apps in one test run).
                log.warning("%s is instrumented already", type(instrumentor).__name__)
                continue
            instrumentor.instrument(tracer_provider=self.provider)
            self._instrumented.append(instrumentor)

    def stop(self) -> None:
        """Remove the instrumentation, export what is left and close the exporters."""
        for instrumentor in self._instrumented:
            instrumentor.uninstrument()
        self._instrumented.clear()
        self.provider.shutdown()

    def wrap_asgi(self, app: Any) -> Any:
        """``app`` inside the ASGI instrumentation: a server span per HTTP request and
        WebSocket connection, continuing the caller's trace (``traceparent``)."""
        from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

        return OpenTelemetryMiddleware(
            app,
            excluded_urls=EXCLUDED_URLS,
            tracer_provider=self.provider,
            # The request metrics are the app's own (app/telemetry/metrics.py), by operation
            # name and outcome; the middleware's http.server.* would only double them.
            meter_provider=NoOpMeterProvider(),
            # A span per body chunk sent or received is noise, not insight.
            exclude_spans=["receive", "send"],
        )


def telemetry_from_environment(environ: Mapping[str, str] | None = None) -> Telemetry | None:
    """The telemetry the ``OTEL_*`` variables configure, or None when tracing is off."""
    environ = os.environ if environ is None else environ
    export: TraceExport | None = trace_export(environ)
    if export is None:
        return None
    processors: list[SpanProcessor] = []
    for name in export.exporters:
        exporter = _exporter(name, export.protocol)
        # Console output is for a person watching: each span as it ends.
        processors.append(
            SimpleSpanProcessor(exporter) if name == "console" else BatchSpanProcessor(exporter)
        )
    return Telemetry(processors, disabled_instrumentations=disabled_instrumentations(environ))


@contextmanager
def instrumented(telemetry: Telemetry | None, *, weaviate: bool) -> Iterator[None]:
    """The store clients instrumented for ``telemetry`` while the block runs (not at all
    when it is None), with the block's own context untraced: the background loops started
    in it inherit that, and their idle polls would be a trace every few hundred milliseconds
    that says nothing. Requests never run in it; a traced batch of the relay or the indexer
    starts a context of its own (app/telemetry/event_links.py). Open the stores inside it:
    the gRPC instrumentation traces only channels opened after it is installed."""
    if telemetry is not None:
        telemetry.start(weaviate=weaviate)
    try:
        with suppress_instrumentation():
            yield
    finally:
        if telemetry is not None:
            telemetry.stop()
