"""A loader batch is one span: current while the batch runs, so the store calls it makes nest
under it; marked as an error, with the exception, when the batch fails."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, cast

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from app.auth import Principal, Role
from loaders.base import LoaderContext, TenantLoader


class EchoLoader(TenantLoader[int, int]):
    """Doubles its keys, making one child span as a store call would; fails on a negative key."""

    store = "Test"

    async def fetch(self, keys: Sequence[int]) -> list[int]:
        tracer = cast("Any", self.ctx.tracer)
        with tracer.start_as_current_span("store call"):
            assert trace.get_current_span().is_recording()
        if any(key < 0 for key in keys):
            raise ValueError("negative key")
        return [key * 2 for key in keys]


def loader(exporter: InMemorySpanExporter) -> EchoLoader:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    principal = Principal(tenant_id=uuid.uuid4(), tenant_slug="t", role=Role.VIEWER, subject="test")
    ctx = LoaderContext(
        principal=principal,
        engine=cast("Any", None),
        redis=cast("Any", None),
        vectors=cast("Any", None),
        embedder=None,
        timeout=5.0,
        tracer=provider.get_tracer("test"),
    )
    return EchoLoader(ctx)


async def test_a_batch_is_one_span_with_its_store_calls_under_it() -> None:
    exporter = InMemorySpanExporter()
    echo = loader(exporter)
    assert await echo.load_many([1, 2, 3]) == [2, 4, 6]
    spans = {span.name: span for span in exporter.get_finished_spans()}
    batch, call = spans["Test EchoLoader"], spans["store call"]
    assert batch.attributes is not None and batch.attributes["chimera.batch_size"] == 3
    assert call.parent is not None and batch.context is not None
    assert call.parent.span_id == batch.context.span_id
    assert batch.status.status_code is StatusCode.UNSET
    assert trace.get_current_span() is trace.INVALID_SPAN  # nothing left attached


async def test_a_failed_batch_is_an_error_span_with_the_exception() -> None:
    exporter = InMemorySpanExporter()
    echo = loader(exporter)
    with pytest.raises(ValueError, match="negative key"):
        await echo.load(-1)
    [batch] = [s for s in exporter.get_finished_spans() if s.name == "Test EchoLoader"]
    assert batch.status.status_code is StatusCode.ERROR
    assert [event.name for event in batch.events] == ["exception"]
    assert trace.get_current_span() is trace.INVALID_SPAN
