"""A plain ASGI middleware that refuses request bodies over the configured size with 413.

It counts bytes as they arrive rather than trusting Content-Length, so a chunked upload of a
huge body is cut off before it is buffered in memory.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.response_media import GRAPHQL_RESPONSE_JSON, negotiate


class BodyTooLarge(Exception):
    pass


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await self._reject(scope, send)
                return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._reject(scope, send)

    async def _reject(self, scope: Scope, send: Send) -> None:
        """413 in the media type the client accepts (app/response_media.py): a request
        error, so no ``data`` under application/graphql-response+json."""
        accept = next((v for k, v in scope.get("headers", []) if k == b"accept"), b"")
        media = negotiate(accept.decode("latin-1") or None)
        error = {
            "message": f"Request body larger than {self.max_bytes} bytes",
            "extensions": {"code": "BAD_USER_INPUT"},
        }
        answer: dict[str, object] = {"errors": [error]}
        if media != GRAPHQL_RESPONSE_JSON:
            answer = {"data": None, **answer}
        body = json.dumps(answer).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", media.encode()),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
