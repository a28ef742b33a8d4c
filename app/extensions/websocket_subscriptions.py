"""Subscriptions are served over WebSocket and Server-Sent Events; over a plain HTTP
request (no ``Accept: text/event-stream``) they are a clear error.

Strawberry would otherwise run a subscription sent by POST as if it were a query and fail
deep inside execution ("cannot return null"), which reads like a server bug. An SSE request
(the view gives its context an event cursor) is a stream, not refused.
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
        streamed = getattr(context.context, "event_cursor", None) is not None
        if (
            context.operation_type is OperationType.SUBSCRIPTION
            and not isinstance(request, WebSocket)
            and not streamed
        ):
            context.result = ExecutionResult(
                data=None,
                errors=[
                    GraphQLError(
                        "Subscriptions are served over WebSocket (graphql-transport-ws) or "
                        "Server-Sent Events (Accept: text/event-stream) at /graphql",
                        extensions={"code": ErrorCode.BAD_USER_INPUT.value},
                    )
                ],
            )
        yield
