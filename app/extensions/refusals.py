"""Refusing an operation from an extension's ``on_execute``, subscriptions included.

An extension refuses a query or mutation by setting the execution context's ``result``:
Strawberry then skips execution. For a subscription it does not look: it starts the
subscription whatever ``result`` holds, so a refusal there (an agent token's scope, a cost
limit, a spent budget, no credential) was silently ignored and the events flowed. The
refusal is therefore also left where the executor finds it: a context variable, set in the
task that runs the operation (Strawberry runs each WebSocket operation in a task of its own,
and an HTTP or SSE request is one task), and taken by ``ChimeraExecutionContext.build``
(app/execution/context.py), which answers graphql-core's ``subscribe`` with the error as an
early error. Every transport already treats that as a refusal before execution.
"""

from __future__ import annotations

from contextvars import ContextVar

from graphql import ExecutionResult, GraphQLError
from strawberry.types import ExecutionContext
from strawberry.types.graphql import OperationType

from app.errors import ChimeraError

_REFUSED: ContextVar[GraphQLError | None] = ContextVar("chimera_refused_operation", default=None)


def refuse(ctx: ExecutionContext, error: ChimeraError) -> None:
    """Refuse the operation ``ctx`` is about to execute with ``error``, whatever its type."""
    graphql_error = GraphQLError(error.message, extensions=error.extensions, original_error=error)
    ctx.result = ExecutionResult(data=None, errors=[graphql_error])
    if ctx.operation_type is OperationType.SUBSCRIPTION:
        _REFUSED.set(graphql_error)


def take_refusal() -> GraphQLError | None:
    """The refusal of the operation this task is starting, if any, cleared as it is taken."""
    error = _REFUSED.get()
    if error is not None:
        _REFUSED.set(None)
    return error
