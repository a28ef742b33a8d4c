"""Subscriptions are served over WebSocket only; over plain HTTP they are a clear error.

Strawberry would otherwise run a subscription sent by POST as if it were a query and fail
deep inside execution ("cannot return null"), which reads like a server bug.
"""

from __future__ import annotations

from collections.abc import Iterator

from graphql import ExecutionResult, GraphQLError
from starlette.websockets import WebSocket
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from app.errors import ErrorCode


class SubscriptionsOverWebSocket(SchemaExtension):
    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        request = getattr(context.context, "request", None)
        if context.operation_type is OperationType.SUBSCRIPTION and not isinstance(
            request, WebSocket
        ):
            context.result = ExecutionResult(
                data=None,
                errors=[
                    GraphQLError(
                        "Subscriptions are served over WebSocket (graphql-transport-ws) at "
                        "/graphql",
                        extensions={"code": ErrorCode.BAD_USER_INPUT.value},
                    )
                ],
            )
        yield
