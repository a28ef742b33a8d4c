"""The access log: one line per HTTP request and per WebSocket connection, written when it
ends, with what an operator asks first: status, duration, the operation's cost, the tenant
and the operation. Plain ASGI, so it times the whole request, body included.

The path is logged without its query string: a presigned media URL's signature or a
persisted query's variables have no place in a log.
"""

from __future__ import annotations

import logging
from time import perf_counter

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.log_context import RequestLog, current_request

log = logging.getLogger("chimera.access")
QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
CLIENT_CLOSED_REQUEST = 499


class AccessLog:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request = RequestLog()
        token = current_request.set(request)
        started = perf_counter()
        status = 0

        async def send_and_note(message: Message) -> None:
            nonlocal status
            kind = message["type"]
            if kind == "http.response.start":
                status = message["status"]
            elif kind == "websocket.accept":
                status = 101
            elif kind == "websocket.close" and not status:
                status = 403  # refused before it was accepted
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
            # Nothing sent and nothing raised: the client left before an answer started
            # (nginx's 499, "client closed request").
            status = status or CLIENT_CLOSED_REQUEST
        except BaseException:
            status = status or 500
            raise
        finally:
            current_request.reset(token)
            path = scope.get("path", "")
            if path not in QUIET_PATHS or status >= 400:
                self._write(scope, path, status, perf_counter() - started, request)

    def _write(
        self, scope: Scope, path: str, status: int, seconds: float, request: RequestLog
    ) -> None:
        method = scope.get("method", "WS")
        duration_ms = round(seconds * 1000, 1)
        cost = "" if request.cost is None else f" cost={request.cost}"
        extra: dict[str, object] = {
            "method": method,
            "path": path,
            "status": status,
            "duration_ms": duration_ms,
        }
        if request.cost is not None:
            extra["cost"] = request.cost
        if request.tenant is not None:
            extra["tenant"] = request.tenant
        if request.operation is not None:
            extra["operation"] = request.operation
        log.info("%s %s %d %.1f ms%s", method, path, status, duration_ms, cost, extra=extra)
