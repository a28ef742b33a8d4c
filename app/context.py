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
from loaders.plan import PlanRecorder
from loaders.registry import Loaders

if TYPE_CHECKING:
    from app.events.hub import StreamHub
    from app.lifespan import Stores
    from app.ratelimit.demand import Demand
    from app.sse import EventCursor


@dataclass
class Context:
    request: Request | WebSocket
    response: Response | WebSocket | None
    settings: Settings
    stores: Stores
    principal: Principal | None
    auth_error: ChimeraError | None = None
    _loaders: Loaders | None = field(default=None, repr=False)
    hub: StreamHub | None = None
    # Filled by Strawberry from a WebSocket's connection_init payload.
    connection_params: dict[str, object] | None = None
    # The operation's price and charge (app/extensions/demand_control.py).
    demand: Demand | None = None
    # The request's plan, when it asked for one (loaders/plan.py).
    plan: PlanRecorder | None = None
    # An SSE request's resume point and current event id (app/sse.py); None on other
    # transports, where a WebSocket's context is shared by all of its operations.
    event_cursor: EventCursor | None = None

    @property
    def loaders(self) -> Loaders:
        if self._loaders is None:
            raise Unauthenticated("Authentication required")
        return self._loaders

    @property
    def events(self) -> StreamHub:
        if self.hub is None:
            raise RuntimeError("no event hub in this context")
        return self.hub

    def fresh_loaders(self) -> Loaders:
        """Loaders with empty caches, for work that must not see earlier reads (each event
        of a long-lived subscription)."""
        return Loaders(self.require_principal(), self.stores, self.settings.store_timeout_seconds)

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
    hub: StreamHub | None = None,
    plan: PlanRecorder | None = None,
) -> Context:
    loaders = (
        Loaders(principal, stores, settings.store_timeout_seconds, plan) if principal else None
    )
    return Context(
        request, response, settings, stores, principal, auth_error, loaders, hub, plan=plan
    )
