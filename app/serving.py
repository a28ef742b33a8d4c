"""How uvicorn serves the app: one place, used by `chimera serve` and by the tests' server."""

from __future__ import annotations

import socket

import uvicorn
from starlette.types import ASGIApp

from app.settings import Settings
from app.sse import end_event_streams


class ChimeraServer(uvicorn.Server):
    """uvicorn's server, ending open event streams (app/sse.py) when it starts to stop: it
    waits for every response to finish first, and a subscription's stream never would."""

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        end_event_streams(self.config.app)
        await super().shutdown(sockets)


def server_config(
    app: ASGIApp, settings: Settings, *, host: str, port: int, log_level: str = "info"
) -> uvicorn.Config:
    """WebSocket ping frames every keep-alive interval, and a peer that does not answer within
    another is disconnected: a dashboard whose network vanished (no close frame, no reset)
    releases its subscriptions in seconds instead of when TCP finally gives up."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        # The app writes its own access line, with duration, cost, tenant and operation.
        access_log=not settings.access_log,
        ws_ping_interval=settings.ws_keepalive_seconds,
        ws_ping_timeout=settings.ws_keepalive_seconds,
        # A WebSocket message is held to the HTTP body's limit: bigger ones close 1009.
        ws_max_size=settings.max_body_bytes,
    )
