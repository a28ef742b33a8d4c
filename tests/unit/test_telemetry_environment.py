"""Which OTEL_* settings turn tracing on, and which are refused before anything starts."""

from __future__ import annotations

import pytest

from app.telemetry.environment import (
    TelemetryConfigurationError,
    disabled_instrumentations,
    trace_export,
)


@pytest.mark.parametrize(
    ("environ", "exporters"),
    [
        ({}, None),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, ("otlp",)),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, ("otlp",)),
        ({"OTEL_TRACES_EXPORTER": "console"}, ("console",)),
        ({"OTEL_TRACES_EXPORTER": "otlp,console"}, ("otlp", "console")),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, None),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, None),
    ],
)
def test_tracing_is_on_only_when_the_environment_names_an_exporter_or_endpoint(
    environ: dict[str, str], exporters: tuple[str, ...] | None
) -> None:
    export = trace_export(environ)
    assert (export.exporters if export else None) == exporters


@pytest.mark.parametrize(
    "environ",
    [
        {"OTEL_TRACES_EXPORTER": "zipkin"},
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json",
        },
    ],
)
def test_an_exporter_or_protocol_the_service_cannot_use_is_refused_by_name(
    environ: dict[str, str],
) -> None:
    with pytest.raises(TelemetryConfigurationError, match="OTEL_"):
        trace_export(environ)


@pytest.mark.parametrize(
    ("value", "disabled"),
    [
        ("", set()),
        ("asyncpg", {"asyncpg"}),
        (" redis , aiohttp-client,", {"redis", "aiohttp-client"}),  # as the launcher strips
        ("*", {"*"}),
        ("urllib3,asyncpg", {"urllib3", "asyncpg"}),  # another service's names: ignored later
    ],
)
def test_disabled_instrumentations_are_read_as_the_opentelemetry_launcher_reads_them(
    value: str, disabled: set[str]
) -> None:
    assert disabled_instrumentations({"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": value}) == disabled
