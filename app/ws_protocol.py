"""Our graphql-transport-ws handler: Strawberry's, plus what a long-lived dashboard needs.

- Protocol pings. WebSocket ping frames (uvicorn sends them, see app/serving.py) find dead
  peers, but browsers hide them from JavaScript; a `ping` message every keep-alive interval
  lets a graphql-ws client notice a dead server too, and keeps idle proxies from cutting it.
- A refused subscription over the per-connection cap carries a code (RATE_LIMITED), like
  every other error clients branch on.
- An event its subscriber's rate limit refuses ends the subscription with a RATE_LIMITED
  ``error`` (app/extensions/demand_control.py); the client resumes with ``after``.
- A client that leaves while an event is being sent is normal life, not an error worth a
  traceback in the log.
- A refused operation (a syntax error, a validation error, an operation limit, a bad
  variable) is an ``error`` message whose errors carry ``extensions.code``, as over HTTP,
  without suggestions in production. Strawberry let the parser cache's syntax error escape
  as an exception: a bare ``complete`` and a traceback.
- A document of several operations that names none is refused (app/operation_choice.py),
  on the legacy graphql-ws protocol too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator
from typing import Any

from graphql import GraphQLError
from starlette.websockets import WebSocketDisconnect
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    ConnectionInitMessage,
    ErrorMessage,
    SubscribeMessage,
)
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.subscriptions.protocols.graphql_ws.types import ErrorMessage as LegacyErrorMessage
from strawberry.subscriptions.protocols.graphql_ws.types import StartMessage
from strawberry.types.execution import PreExecutionError
from uvicorn.protocols.utils import ClientDisconnected

from app.errors import ChimeraError, ErrorCode
from app.extensions.demand_control import ENDS_SUBSCRIPTION
from app.extensions.error_codes import add_codes, strip_suggestions
from app.operation_choice import unchosen_operation_error
from app.response_media import refused_before_execution

log = logging.getLogger(__name__)


class ChimeraTransportWSHandler(BaseGraphQLTransportWSHandler[Any, None]):
    pinger: asyncio.Task[None] | None = None

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        if "payload" in message and message["payload"] is None:
            # graphql-transport-ws allows a null payload; Strawberry closes with 4400 for
            # it. Without a payload there is no credential: 4403, as documented.
            del message["payload"]
        await super().handle_connection_init(message)
        interval = self.view.keep_alive_interval
        if self.connection_acknowledged and interval and self.pinger is None:
            self.pinger = asyncio.create_task(self._ping_every(interval))

    async def _ping_every(self, interval: float) -> None:
        with contextlib.suppress(WebSocketDisconnected):
            while True:
                await asyncio.sleep(interval)
                await self.send_message({"type": "ping"})

    async def shutdown(self) -> None:
        if self.pinger is not None:
            self.pinger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.pinger
        await super().shutdown()

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        malformed = malformed_subscribe(message)
        if malformed is not None:
            # The protocol's answer to a message that is not its own: close with 4400, as
            # Strawberry does for a malformed connection_init. Left to Strawberry, a query
            # that is not a string failed inside the lexer (a traceback in the log and a
            # bare ``complete``), and a numeric id or a list of variables went unnoticed.
            await self.websocket.close(code=4400, reason=malformed)
            return
        cap = self.max_subscriptions_per_connection
        if (
            self.connection_acknowledged
            and cap is not None
            and message["id"] not in self.operations
            and len(self.operations) >= cap
        ):
            error = GraphQLError(
                f"This connection already runs {cap} operations; end one first",
                extensions={"code": ErrorCode.RATE_LIMITED.value},
            )
            await self.send_message(
                ErrorMessage(id=message["id"], type="error", payload=[error.formatted])
            )
            return
        refused = await self._resolve_document(message)
        if refused is not None:
            await self.send_message(
                ErrorMessage(id=message["id"], type="error", payload=[refused.formatted])
            )
            return
        await super().handle_subscribe(message)

    async def _resolve_document(self, message: SubscribeMessage) -> GraphQLError | None:
        """The document a subscribe message names by hash, put in its place; or why not
        (with trusted documents only, a document that is not registered is refused here as
        over HTTP, WebSockets being no way around the safelist; a document of several
        operations that names none, as everywhere)."""
        context = self.context
        if not self.connection_acknowledged:
            return None  # Strawberry closes the socket
        payload: Any = message.get("payload") or {}
        principal = getattr(context, "principal", None)
        documents = getattr(getattr(context, "stores", None), "documents", None)
        if principal is not None and documents is not None:
            try:
                query = await documents.resolve(
                    principal.tenant_id, payload.get("query"), payload.get("extensions")
                )
            except ChimeraError as error:
                return GraphQLError(error.message, extensions=error.extensions)
            if query is not None:
                payload["query"] = query
        return unchosen_operation_error(
            payload.get("query"), payload.get("operationName"), context.settings.max_tokens
        )

    async def _send_result_stream(
        self, operation: Operation[Any, None], result_source: Any
    ) -> None:
        try:
            await super()._send_result_stream(operation, self._until_refused(result_source))
        except GraphQLError as error:  # raised before execution (the parser cache's syntax error)
            await self._send_errors(operation, [error])
        except _Refused as refused:
            await self._send_errors(operation, list(refused.errors))

    async def _handle_pre_execution_error(
        self, operation: Operation[Any, None], result: PreExecutionError
    ) -> None:
        self._coded(list(result.errors or []))
        await super()._handle_pre_execution_error(operation, result)

    async def _send_errors(
        self, operation: Operation[Any, None], errors: list[GraphQLError]
    ) -> None:
        await operation.send_initial_errors(self._coded(errors))

    def _coded(self, errors: list[GraphQLError]) -> list[GraphQLError]:
        if getattr(self.view, "hide_suggestions", False):
            strip_suggestions(errors)
        add_codes(errors)
        return errors

    async def _until_refused(self, results: Any) -> AsyncGenerator[Any, None]:
        """The results of an operation, coded, until one ends it with errors of no position
        in a response: refused before execution (a variable that does not coerce, a cost
        limit, the tenant's subscription cap, an expired cursor), a subscription's source
        failing (it fell behind, a store went away), or an event its rate limit refused
        (app/extensions/demand_control.py). That one goes out as an ``error`` message, which
        graphql-transport-ws defines as final, instead of a ``next`` and a ``complete`` a
        client could take for a normal end. (Strawberry sends a result before the
        operation's extensions finish, so the codes are set here.)"""
        async for result in results:
            errors = self._coded(list(result.errors or []))
            if getattr(result, ENDS_SUBSCRIPTION, False) or refused_before_execution(
                result.data, errors
            ):
                raise _Refused(errors)
            yield result

    async def handle_task_exception(self, error: Exception) -> None:
        if _client_left(error):
            log.debug("client left while an operation was sending: %s", error)
            return
        await super().handle_task_exception(error)


class _Refused(Exception):
    def __init__(self, errors: list[GraphQLError]) -> None:
        super().__init__("event refused")
        self.errors = errors


def _client_left(error: BaseException) -> bool:
    """A send that failed because the peer is gone, whichever layer noticed: Strawberry,
    uvicorn, or Starlette refusing to send after the close ("Cannot call send once a close
    message has been sent")."""
    if isinstance(error, WebSocketDisconnected | WebSocketDisconnect | ClientDisconnected):
        return True
    return isinstance(error, RuntimeError) and "close message has been sent" in str(error)


class LegacyGraphQLWSHandler(BaseGraphQLWSHandler[Any, None]):
    """The legacy graphql-ws protocol (``CHIMERA_LEGACY_GRAPHQL_WS``), refusing a document
    of several operations that names none, as graphql-transport-ws does."""

    async def handle_start(self, message: StartMessage) -> None:
        error = None
        if self.connection_acknowledged:  # else Strawberry closes the socket
            payload: Any = message.get("payload") or {}
            error = unchosen_operation_error(
                payload.get("query"), payload.get("operationName"), self.context.settings.max_tokens
            )
        if error is None:
            await super().handle_start(message)
            return
        await self.send_message(
            LegacyErrorMessage(type="error", id=message["id"], payload=error.formatted)
        )


def malformed_subscribe(message: SubscribeMessage) -> str | None:
    """What makes a ``subscribe`` message not graphql-transport-ws's, if anything: its id a
    string, its payload an object whose ``query``, ``operationName``, ``variables`` and
    ``extensions`` are strings, objects, or null (the rules of GraphQL over HTTP's request
    parameters; a query left out is named by a persisted document's hash)."""
    payload: Any = message.get("payload")
    if not isinstance(message.get("id"), str):
        return "A subscribe message's id must be a string"
    if not isinstance(payload, dict):
        return "A subscribe message's payload must be an object"
    if not isinstance(payload.get("query"), str | None):  # None: a persisted document's
        return "A subscribe message's query must be a string"
    if not isinstance(payload.get("operationName"), str | None):
        return "A subscribe message's operationName must be a string or null"
    for name in ("variables", "extensions"):
        if not isinstance(payload.get(name), dict | None):
            return f"A subscribe message's {name} must be an object or null"
    return None
