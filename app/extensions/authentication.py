"""No operation runs without a Principal: the whole operation answers UNAUTHENTICATED."""

from __future__ import annotations

from collections.abc import Iterator

from strawberry.extensions import SchemaExtension

from app.errors import Unauthenticated
from app.extensions.refusals import refuse


class RequireAuthentication(SchemaExtension):
    def on_execute(self) -> Iterator[None]:
        context = self.execution_context.context
        if getattr(context, "principal", None) is None:
            error = getattr(context, "auth_error", None) or Unauthenticated(
                "Authentication required"
            )
            refuse(self.execution_context, error)
        yield
