"""No operation runs without a Principal: the whole operation answers UNAUTHENTICATED."""

from __future__ import annotations

from collections.abc import Iterator

from graphql import ExecutionResult, GraphQLError
from strawberry.extensions import SchemaExtension

from app.errors import Unauthenticated


class RequireAuthentication(SchemaExtension):
    def on_execute(self) -> Iterator[None]:
        context = self.execution_context.context
        if getattr(context, "principal", None) is None:
            error = getattr(context, "auth_error", None) or Unauthenticated(
                "Authentication required"
            )
            self.execution_context.result = ExecutionResult(
                data=None,
                errors=[
                    GraphQLError(error.message, extensions=error.extensions, original_error=error)
                ],
            )
        yield
