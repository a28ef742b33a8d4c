"""What the standard ``OTEL_*`` variables ask of the service's traces.

The SDK reads most of them by itself (``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES``
for the resource, ``OTEL_TRACES_SAMPLER`` and its argument, ``OTEL_BSP_*`` for batching,
``OTEL_EXPORTER_OTLP_*`` for the endpoint, headers and timeout). What is left is the choice
the opentelemetry-instrument launcher would otherwise make: whether to trace at all and with
which exporters. Tracing is on when an exporter is named (``OTEL_TRACES_EXPORTER``) or an
OTLP endpoint is given, so that setting the one variable every backend documents is enough;
``OTEL_SDK_DISABLED=true`` or ``OTEL_TRACES_EXPORTER=none`` turns it off.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

EXPORTERS = frozenset({"otlp", "console"})
PROTOCOLS = frozenset({"http/protobuf", "grpc"})


class TelemetryConfigurationError(ValueError):
    """An ``OTEL_*`` value this service cannot honour: reported before anything starts."""


@dataclass(frozen=True)
class TraceExport:
    exporters: tuple[str, ...]  # each of EXPORTERS
    protocol: str  # for "otlp": each of PROTOCOLS


def trace_export(environ: Mapping[str, str]) -> TraceExport | None:
    """The exporters the environment asks for, or None when tracing is off."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    named = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if named:
        exporters = tuple(name.strip() for name in named.split(",") if name.strip())
    elif environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
    ):
        exporters = ("otlp",)
    else:
        return None
    if exporters == ("none",) or not exporters:
        return None
    unknown = [name for name in exporters if name not in EXPORTERS]
    if unknown:
        raise TelemetryConfigurationError(
            f"OTEL_TRACES_EXPORTER names {', '.join(unknown)}; "
            f"this service exports with {', '.join(sorted(EXPORTERS))} or none"
        )
    protocol = (
        environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    ).strip()
    if "otlp" in exporters and protocol not in PROTOCOLS:
        raise TelemetryConfigurationError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL is {protocol!r}; "
            f"this service speaks {' or '.join(sorted(PROTOCOLS))}"
        )
    return TraceExport(exporters, protocol)


def disabled_instrumentations(environ: Mapping[str, str]) -> frozenset[str]:
    """``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`` as the opentelemetry-instrument launcher
    reads it: instrumentation names separated by commas (``asyncpg, redis``), or ``*`` for
    all. A name this service has no instrumentation for is ignored, as the launcher ignores
    it: one value is often set for every Python service of a deployment."""
    value = environ.get("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "")
    return frozenset(name.strip() for name in value.split(",") if name.strip())


def metrics_export(environ: Mapping[str, str]) -> str | None:
    """The OTLP protocol metrics are pushed with, or None: Prometheus text on ``/metrics``
    is always there, so OTLP is an addition, on when an endpoint is given (or
    ``OTEL_METRICS_EXPORTER=otlp``) and off with ``none`` or ``prometheus``."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    named = {n.strip() for n in environ.get("OTEL_METRICS_EXPORTER", "").lower().split(",")}
    named.discard("")
    unknown = named - {"otlp", "prometheus", "none"}
    if unknown:
        raise TelemetryConfigurationError(
            f"OTEL_METRICS_EXPORTER names {', '.join(sorted(unknown))}; "
            "this service exports metrics with otlp, prometheus (/metrics) or none"
        )
    endpoint = environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or environ.get(
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"
    )
    if "otlp" not in named and (named or not endpoint):
        return None
    protocol = (
        environ.get("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL")
        or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    ).strip()
    if protocol not in PROTOCOLS:
        raise TelemetryConfigurationError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL is {protocol!r}; "
            f"this service speaks {' or '.join(sorted(PROTOCOLS))}"
        )
    return protocol
