"""No operation runs without a Principal: the whole operation answers UNAUTHENTICATED.

A WebSocket authenticates once, in connection_init, and its operations share that Principal
for as long as it stays open: each operation on it checks again that an API key it stands
for has not been revoked since (app/api_keys.py; a JWT's revocation is checked by the
operation's charge, app/extensions/demand_control.py). An HTTP request, authenticated just
now, is not checked twice.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.websockets import WebSocket
from strawberry.extensions import SchemaExtension

from app.errors import Unauthenticated
from app.extensions.refusals import refuse


class RequireAuthentication(SchemaExtension):
    async def on_execute(self) -> AsyncIterator[None]:
        context = self.execution_context.context
        principal = getattr(context, "principal", None)
        if principal is None:
            error = getattr(context, "auth_error", None) or Unauthenticated(
                "Authentication required"
            )
            refuse(self.execution_context, error)
        elif isinstance(getattr(context, "request", None), WebSocket):
            api_keys = context.stores.api_keys
            if api_keys is not None:
                try:
                    await api_keys.ensure_valid(principal)
                except Unauthenticated as revoked:
                    refuse(self.execution_context, revoked)
        yield
