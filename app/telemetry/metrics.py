"""The service's metrics: OpenTelemetry instruments, read as Prometheus text on ``/metrics``
and exported over OTLP when the ``OTEL_*`` variables ask for it.

One ``Metrics`` per app, with a meter provider of its own: its Prometheus reader writes into
a registry of its own too, so two apps in one process (the tests) never mix their numbers,
and nothing is registered globally. Recording is cheap (a histogram or counter update, a
few microseconds); numbers that live in the stores (outbox and indexer backlogs, dead
letters) are read by :meth:`Metrics.refresh` every few seconds, never per
request or per scrape.

Attributes stay bounded: stores and loaders are a fixed set, outcomes three, and operation
names, which clients choose, are kept for the first ``MAX_OPERATION_NAMES`` seen and
reported as ``other`` after that, so a client sending random names cannot grow the series
without end.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field

from opentelemetry.metrics import CallbackOptions, Meter, NoOpMeterProvider, Observation
from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from prometheus_client import CollectorRegistry

from app.telemetry.environment import metrics_export

log = logging.getLogger("chimera.telemetry")

MAX_OPERATION_NAMES = 200
OTHER = "other"
# Request and store-call durations: from a Redis round trip to a store timeout.
SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
KEYS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)


@dataclass
class StoreGauges:
    """The last values read from the stores (None until first read)."""

    outbox_backlog: int | None = None
    outbox_oldest_seconds: float | None = None
    indexer_backlog: int | None = None
    dead_letters: int | None = None
    refresh_errors: int = 0


@dataclass
class OperationNames:
    """Client-chosen operation names, bounded."""

    limit: int = MAX_OPERATION_NAMES
    seen: set[str] = field(default_factory=set)

    def label(self, name: str | None) -> str:
        if not name:
            return "anonymous"
        if name in self.seen:
            return name
        if len(self.seen) < self.limit:
            self.seen.add(name)
            return name
        return OTHER


class Metrics:
    """The instruments every part of the app records into."""

    def __init__(
        self,
        readers: Iterable[MetricReader] = (),
        registry: CollectorRegistry | None = None,
    ) -> None:
        readers = list(readers)
        self.registry = registry
        self.provider: MeterProvider | NoOpMeterProvider
        if readers:
            attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: "chimera"}
            self.provider = MeterProvider(
                metric_readers=readers,
                resource=Resource.create(attributes),
                # Exemplars (a trace id per bucket) cost a context lookup per measurement,
                # and neither reader here shows them.
                exemplar_filter=AlwaysOffExemplarFilter(),
            )
        else:
            self.provider = NoOpMeterProvider()
        meter: Meter = self.provider.get_meter("chimera")
        self.gauges = StoreGauges()
        self.operations = OperationNames()
        self.request_duration = meter.create_histogram(
            "chimera.graphql.request.duration",
            unit="s",
            description="GraphQL operations (queries and mutations) from start to response",
            explicit_bucket_boundaries_advisory=SECONDS,
        )
        self.rejections = meter.create_counter(
            "chimera.graphql.rejections",
            description="Operations refused before execution, by error code",
        )
        self.store_call_duration = meter.create_histogram(
            "chimera.store.call.duration",
            unit="s",
            description="Loader batches, each one call to one store",
            explicit_bucket_boundaries_advisory=SECONDS,
        )
        self.store_errors = meter.create_counter(
            "chimera.store.errors", description="Loader batches that failed, by store"
        )
        self.batch_size = meter.create_histogram(
            "chimera.loader.batch.size",
            unit="{key}",
            description="Keys per loader batch",
            explicit_bucket_boundaries_advisory=KEYS,
        )
        self.cache_lookups = meter.create_counter(
            "chimera.cache.lookups", description="Shared cache lookups, by cache and result"
        )
        self.replica_fallbacks = meter.create_counter(
            "chimera.db.replica.fallbacks",
            description="Queries whose reads went to the primary though read replicas are "
            "configured, by reason (lagging, down, the caller's own write not replayed yet)",
        )
        self.relay_lag = meter.create_histogram(
            "chimera.outbox.relay.lag",
            unit="s",
            description="From an event's commit to its publication on the stream",
            explicit_bucket_boundaries_advisory=SECONDS,
        )
        self.events_published = meter.create_counter(
            "chimera.outbox.published", description="Outbox events the relay published"
        )
        self.subscriptions_open = meter.create_up_down_counter(
            "chimera.subscriptions.open", description="Subscriptions being served"
        )
        self.events_delivered = meter.create_counter(
            "chimera.subscriptions.events.delivered",
            description="Events delivered to subscribers",
        )
        gauges = self.gauges
        for name, description, read in (
            ("chimera.outbox.backlog", "Outbox events not yet published", "outbox_backlog"),
            (
                "chimera.outbox.oldest_unpublished_age",
                "Age in seconds of the oldest unpublished outbox event",
                "outbox_oldest_seconds",
            ),
            (
                "chimera.indexer.backlog",
                "Outbox events the indexer has yet to embed",
                "indexer_backlog",
            ),
            ("chimera.indexer.dead_letters", "Events the indexer gave up on", "dead_letters"),
        ):
            meter.create_observable_gauge(
                name, callbacks=[_observe(gauges, read)], description=description
            )

    async def refresh(
        self, readers: Mapping[str, Callable[[], Awaitable[float | int | None]]]
    ) -> None:
        """Read each store-held number (``readers`` by StoreGauges field); one that fails
        keeps its last value and counts a refresh error."""
        for name, read in readers.items():
            try:
                setattr(self.gauges, name, await read())
            except Exception as exc:  # a store outage: keep the last value, say so once
                self.gauges.refresh_errors += 1
                log.debug("metrics: could not read %s: %s", name, exc)

    def count_lookups(self, cache: str, hits: int, misses: int) -> None:
        if hits:
            self.cache_lookups.add(hits, {"cache": cache, "result": "hit"})
        if misses:
            self.cache_lookups.add(misses, {"cache": cache, "result": "miss"})

    def shutdown(self) -> None:
        if isinstance(self.provider, MeterProvider):
            self.provider.shutdown()


def _observe(gauges: StoreGauges, name: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
    def callback(options: CallbackOptions) -> Iterable[Observation]:
        value = getattr(gauges, name)
        return [] if value is None else [Observation(value)]

    return callback


def metrics_from_environment(environ: Mapping[str, str] | None = None) -> Metrics:
    """Prometheus text for ``/metrics`` always; OTLP export as well when configured."""
    from opentelemetry.exporter.prometheus import PrometheusMetricReader

    registry = CollectorRegistry(auto_describe=False)
    readers: list[MetricReader] = [
        PrometheusMetricReader(
            disable_target_info=True, scope_info_enabled=False, registry=registry
        )
    ]
    protocol = metrics_export(os.environ if environ is None else environ)
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
            OTLPMetricExporter as GrpcMetricExporter,
        )

        readers.append(PeriodicExportingMetricReader(GrpcMetricExporter()))
    elif protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        readers.append(PeriodicExportingMetricReader(OTLPMetricExporter()))
    return Metrics(readers, registry)


async def keep_refreshed(
    metrics: Metrics,
    readers: Mapping[str, Callable[[], Awaitable[float | int | None]]],
    every: float,
) -> None:
    """Refresh the store-held numbers every ``every`` seconds until cancelled."""
    while True:
        await metrics.refresh(readers)
        await asyncio.sleep(every)
