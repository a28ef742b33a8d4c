"""Each query and mutation's duration, by operation and outcome, and every refusal by code.

Subscriptions are left out of the duration histogram: their "operation" lasts as long as the
client stays, which says nothing about how fast the service is; their events are counted
where they are delivered (resolvers/events/subscriptions.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from time import perf_counter

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from app.extensions.error_codes import error_code
from app.extensions.operations import operation_kind
from app.log_context import note_operation
from app.telemetry.metrics import Metrics


class OperationMetrics(SchemaExtension):
    def __init__(self, *, metrics: Metrics) -> None:
        self.metrics = metrics

    def on_operation(self) -> Iterator[None]:
        started = perf_counter()
        yield
        ec = self.execution_context
        note_operation(ec.operation_name)
        kind = operation_kind(ec) or "unknown"
        if kind == OperationType.SUBSCRIPTION.value:
            return
        refusals = ec.pre_execution_errors or []
        result_errors = ec.result.errors if ec.result is not None else None
        if refusals:
            outcome = "rejected"
        elif result_errors:
            outcome = (
                "rejected"
                if ec.result is not None and ec.result.data is None and _refused(result_errors)
                else "error"
            )
        else:
            outcome = "ok"
        self.metrics.request_duration.record(
            perf_counter() - started,
            {
                "graphql.operation.name": self.metrics.operations.label(ec.operation_name),
                "graphql.operation.type": kind,
                "outcome": outcome,
            },
        )
        if outcome == "rejected":
            for code in sorted({error_code(e) for e in [*refusals, *(result_errors or [])]}):
                self.metrics.rejections.add(1, {"code": code})


REFUSALS = frozenset(
    {
        "RATE_LIMITED",
        "COST_LIMIT",
        "UNAUTHENTICATED",
        "FORBIDDEN",
        "PERSISTED_QUERY_NOT_FOUND",
        "PERSISTED_QUERY_NOT_SUPPORTED",
    }
)


def _refused(errors: list[GraphQLError]) -> bool:
    """Errors that stopped the operation before anything ran (the demand-control and
    authentication extensions raise them at the start of execution)."""
    return all(error_code(error) in REFUSALS for error in errors)
