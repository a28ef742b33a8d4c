"""The GraphQL operation as a span, with its parse, validation and execution under it.

Strawberry's OpenTelemetryExtension, changed in three ways. Its operation span becomes the
current span, so that the loader batches and store calls the execution makes nest under the
operation rather than beside it. Execution gets a span of its own. And there is no span per
resolver: Strawberry's would make one for every resolved field of every object (thousands
for a dashboard page), and installing a resolve hook at all sends every field through
graphql-core's middleware; the loader batches already say where the time went, once per
batch. Names and attributes follow OpenTelemetry's GraphQL conventions
(``query Dashboard``, ``graphql.operation.type``, ``graphql.operation.name``,
``graphql.document``).
"""

from __future__ import annotations

from collections.abc import Iterator

from opentelemetry import context, trace
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer
from strawberry.extensions import LifecycleStep, SchemaExtension
from strawberry.extensions.tracing import OpenTelemetryExtension

from app.extensions.error_codes import error_code
from app.extensions.operations import operation_kind


class OperationTracing(OpenTelemetryExtension):
    resolve = SchemaExtension.resolve  # type: ignore[assignment]

    def __init__(self, *, tracer: Tracer) -> None:
        # Not the parent's: it asks the provider for a new tracer on every request.
        self._tracer = tracer
        self._span_holder = {}
        self._arg_filter = None

    def on_operation(self) -> Iterator[None]:  # type: ignore[override]
        ec = self.execution_context
        span = self._tracer.start_span("GraphQL Operation", kind=SpanKind.INTERNAL)
        if ec.query:
            span.set_attribute("graphql.document", ec.query)
        self._span_holder[LifecycleStep.OPERATION] = span
        token = context.attach(trace.set_span_in_context(span))
        try:
            yield
        finally:
            context.detach(token)
            self._finish(span)

    def on_execute(self) -> Iterator[None]:
        span = self._tracer.start_span(
            "GraphQL Execution",
            context=trace.set_span_in_context(self._span_holder[LifecycleStep.OPERATION]),
        )
        token = context.attach(trace.set_span_in_context(span))
        try:
            yield
        finally:
            context.detach(token)
            span.end()

    def _finish(self, span: trace.Span) -> None:
        ec = self.execution_context
        name = ec.operation_name
        kind = operation_kind(ec)
        if kind:
            span.set_attribute("graphql.operation.type", kind)
            span.update_name(f"{kind} {name}" if name else kind)
        if name:
            span.set_attribute("graphql.operation.name", name)
        errors = list(ec.pre_execution_errors or ())
        if ec.result is not None and ec.result.errors:
            errors.extend(ec.result.errors)
        if errors:
            codes = sorted({error_code(e) for e in errors})
            span.set_attribute("graphql.error.codes", codes)
            span.set_status(Status(StatusCode.ERROR, errors[0].message))
        span.end()
