"""The per-request GraphQL context: who is calling, and the loaders bound to them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket

from app.auth import Principal
from app.errors import ChimeraError, Unauthenticated
from app.settings import Settings
from loaders.registry import Loaders

if TYPE_CHECKING:
    from app.lifespan import Stores


@dataclass
class Context:
    request: Request | WebSocket
    response: Response | WebSocket | None
    settings: Settings
    stores: Stores
    principal: Principal | None
    auth_error: ChimeraError | None = None
    _loaders: Loaders | None = field(default=None, repr=False)

    @property
    def loaders(self) -> Loaders:
        if self._loaders is None:
            raise Unauthenticated("Authentication required")
        return self._loaders

    def require_principal(self) -> Principal:
        if self.principal is None:
            raise self.auth_error or Unauthenticated("Authentication required")
        return self.principal


def build_context(
    request: Request | WebSocket,
    response: Response | WebSocket | None,
    settings: Settings,
    stores: Stores,
    principal: Principal | None,
    auth_error: ChimeraError | None,
) -> Context:
    loaders = Loaders(principal, stores, settings.store_timeout_seconds) if principal else None
    return Context(request, response, settings, stores, principal, auth_error, loaders)
