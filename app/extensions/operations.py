"""What the telemetry extensions read of an operation once it has run."""

from __future__ import annotations

from strawberry.types import ExecutionContext


def operation_kind(ec: ExecutionContext) -> str | None:
    """``query``, ``mutation`` or ``subscription``; None when the document did not parse or
    holds no such operation."""
    if ec.graphql_document is None:
        return None
    try:
        return ec.operation_type.value
    except RuntimeError:  # no operation of that name in the document
        return None
