"""The GraphQL endpoint: Strawberry's ASGI view with our context, and GraphQL over HTTP's
response rules (app/response_media.py): the media type the client accepts, 4xx without
``data`` for request errors under ``application/graphql-response+json``, queries over GET
behind CSRF protection, mutations over GET refused with 405.

A document of several operations sent without ``operationName`` is refused, here and on
both WebSocket protocols (app/operation_choice.py).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import AsyncGenerator
from functools import lru_cache
from typing import Any, cast

import orjson
from cross_web import HTTPException
from graphql import GraphQLError, OperationDefinitionNode, OperationType, parse
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData, GraphQLRequestProtocol
from strawberry.types import ExecutionResult, SubscriptionExecutionResult
from strawberry.types.unset import UNSET, UnsetType

from app.api_keys import looks_like_key
from app.auth import Principal, Role, bearer_token, decode_token
from app.context import Context, build_context
from app.documents.store import persisted_hash
from app.errors import ChimeraError, ErrorCode, Unauthenticated
from app.extensions.demand_control import ENDS_SUBSCRIPTION
from app.extensions.error_codes import add_codes, strip_suggestions
from app.graphiql import graphiql_response
from app.jwks import signed_by_provider
from app.log_context import note_tenant
from app.operation_choice import unchosen_operation
from app.response_media import (
    GRAPHQL_RESPONSE_JSON,
    JSON,
    carries_preflight_header,
    is_request_error,
    negotiate,
    request_error_status,
)
from app.settings import Settings
from app.sse import (
    COMPLETE,
    Chunk,
    EventCursor,
    EventStreamResponse,
    next_event,
)
from app.ws_protocol import ChimeraTransportWSHandler, LegacyGraphQLWSHandler
from loaders.plan import PlanRecorder

log = logging.getLogger("chimera.http")


class ChimeraGraphQL(GraphQL[Context, None]):
    graphql_transport_ws_handler_class = ChimeraTransportWSHandler
    graphql_ws_handler_class = LegacyGraphQLWSHandler
    hide_suggestions = False  # set in production (app/main.py)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        request = Request(scope=scope, receive=receive)
        try:
            response = await self.run(request)
        except ClientDisconnect:
            # The client left while its body was still arriving (a load tool closing its
            # connections, a browser tab shut): a client's event, with no one left to answer.
            log.info("the client left before its request body arrived; nothing was run")
            return
        except HTTPException as exc:
            # Strawberry answers malformed requests in plain text; clients expect GraphQL's shape.
            media = negotiate(request.headers.get("accept"))
            response = error_response(exc.status_code, exc.reason, ErrorCode.BAD_USER_INPUT, media)
            if exc.status_code == 405:
                response.headers["Allow"] = "POST" if request.method == "GET" else "GET, POST"
        await response(scope, receive, send)

    async def _create_streaming_response(
        self,
        request: Request,
        result: SubscriptionExecutionResult,
        protocol: GraphQLRequestProtocol,
        sub_response: Response,
    ) -> Response:
        """graphql-sse through our own event stream (app/sse.py): event ids, resumption,
        refusals that end the stream, and a cut for a reader that stopped reading."""
        if protocol != "sse":
            return await super()._create_streaming_response(request, result, protocol, sub_response)
        settings: Settings = request.app.state.settings
        cursor = getattr(request.state, "event_cursor", None) or EventCursor()
        stream = EventStreamResponse(
            self._sse_chunks(request, result, cursor),
            headers={k: v for k, v in sub_response.headers.items() if k != "content-type"},
            heartbeat_seconds=settings.ws_keepalive_seconds,
            send_timeout=settings.sse_send_timeout_seconds,
            encode_json=self.encode_json,
            open_streams=request.app.state.event_streams,
        )
        return cast(Response, stream)

    async def _sse_chunks(
        self, request: Request, results: SubscriptionExecutionResult, cursor: EventCursor
    ) -> AsyncGenerator[Chunk, None]:
        """A ``next`` per result, with the id of the event it was made of, and ``complete``.
        An event refused by the rate limit goes without its id (it was withheld: resuming
        delivers it) and ends the stream."""
        try:
            async with contextlib.aclosing(cast(AsyncGenerator[Any, None], results)) as values:
                async for value in values:
                    event_id, cursor.current = cursor.current, None
                    processed, _ = await self._process_stream_result(request, value, [])
                    refused = getattr(value, ENDS_SUBSCRIPTION, False)
                    shown = None if refused else event_id
                    yield next_event(self.encode_json(processed), shown), shown
                    if refused:
                        break
        except GraphQLError as error:  # raised before execution (the parser cache's)
            add_codes([error])
            if self.hide_suggestions:
                strip_suggestions([error])
            yield next_event(self.encode_json({"errors": [error.formatted]})), None
        yield COMPLETE, None

    async def get_sub_response(self, request: Request | WebSocket) -> Response:
        sub_response = await super().get_sub_response(request)
        if isinstance(request, Request):
            sub_response.media_type = negotiate(request.headers.get("accept"))
        return sub_response

    def create_response(
        self,
        response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse],
        sub_response: Response,
    ) -> Response:
        """With ``application/graphql-response+json`` a request error is a 4xx without a
        ``data`` entry; everything else keeps application/json's shape and status."""
        media = sub_response.media_type or JSON
        status = sub_response.status_code or 200
        if media == GRAPHQL_RESPONSE_JSON and isinstance(response_data, dict):
            body = cast(dict[str, Any], response_data)
            if is_request_error(body):
                response_data = cast(GraphQLHTTPResponse, {k: body[k] for k in body if k != "data"})
                status = request_error_status(body["errors"])
                if status == 401:
                    sub_response.headers["WWW-Authenticate"] = "Bearer"
            else:
                status = 200
        response = Response(self.encode_json(response_data), status, media_type=media)
        response.headers.raw.extend(sub_response.headers.raw)
        if sub_response.background:
            response.background = sub_response.background
        return response

    def decode_json(self, data: str | bytes) -> object:
        """JSON for HTTP bodies and WebSocket messages alike. Nesting too deep for the parser,
        lone surrogates (text no UTF-8 encoder will take further down) and integers longer
        than Python converts (4,300 digits) are refused as invalid JSON: an HTTP client gets
        a 400 (``parse_json``), a WebSocket peer the protocol's "invalid message" close."""
        try:
            value = json.loads(data)
        except UnicodeDecodeError as exc:
            raise HTTPException(400, "The request body is not valid UTF-8") from exc
        except RecursionError as exc:
            raise json.JSONDecodeError("nested too deeply", "", 0) from exc
        except json.JSONDecodeError:
            raise
        except ValueError as exc:  # an integer longer than Python converts (4,300 digits)
            raise json.JSONDecodeError("a number too long", "", 0) from exc
        if has_lone_surrogate(data, value):
            raise json.JSONDecodeError("a lone surrogate (\\ud800-\\udfff) is not text", "", 0)
        return value

    def parse_json(self, data: str | bytes) -> Any:
        """An HTTP body: a JSON object, or a 400 that says what is wrong with it."""
        try:
            value = self.decode_json(data)
        except json.JSONDecodeError as exc:
            reason = "Unable to parse request body as JSON"
            if exc.msg.startswith(("nested", "a lone surrogate", "a number too long")):
                reason = f"The request body is not acceptable JSON: {exc.msg}"
            raise HTTPException(400, reason) from exc
        if not isinstance(value, dict):
            raise HTTPException(400, "The request body must be a JSON object")
        return value

    async def execute_operation(
        self,
        request: Request,
        request_adapter: Any,
        request_data: Any,
        context: Context,
        root_value: Any,
        sub_response: Any,
    ) -> Any:
        """Refuse a GET a cross-site link or form could have sent (it carries neither a
        header such a request cannot carry nor a persisted document), then an
        unauthenticated request, before its document is parsed or validated: the answers
        to invalid documents (unknown fields, suggestions) would describe the schema to
        anyone, introspection or not. Then find the document a request names by hash
        (app/documents/store.py). GET carries queries only: a mutation is refused with 405."""
        single = isinstance(request_data, GraphQLRequestData)
        persisted = persisted_hash_or_error(request_data.extensions) if single else None
        if (
            request_adapter.method == "GET"
            and persisted is None
            and not carries_preflight_header(request.headers)
        ):
            raise HTTPException(
                400,
                "A query over GET must carry an Authorization or GraphQL-Require-Preflight "
                "header, or name a persisted document (CSRF protection)",
            )
        streamed = single and request_data.protocol == "sse"
        if streamed:
            # The subscription resumes after the last event a reconnecting client saw, and
            # notes each event's id as it goes (resolvers/events/subscriptions.py).
            resume = request.headers.get("last-event-id", "").strip() or None
            context.event_cursor = request.state.event_cursor = EventCursor(resume)
        if context.principal is None:
            error = context.auth_error or Unauthenticated("Authentication required")
            return _streamed(refusal(error)) if streamed else refusal(error)
        if single:
            documents = context.stores.documents
            try:
                if documents is not None:
                    request_data.query = await documents.resolve(
                        context.principal.tenant_id, request_data.query, request_data.extensions
                    )
            except ChimeraError as error:
                return _streamed(refusal(error)) if streamed else refusal(error)
            unchosen = unchosen_operation(
                request_data.query, request_data.operation_name, context.settings.max_tokens
            )
            if unchosen is not None:
                return _streamed(refusal(unchosen)) if streamed else refusal(unchosen)
            if request_adapter.method == "GET" and not only_reads(
                request_data.query, request_data.operation_name, subscriptions=streamed
            ):
                raise HTTPException(405, "Only queries may be sent over GET; use POST")
        return await super().execute_operation(
            request=request,
            request_adapter=request_adapter,
            request_data=request_data,
            context=context,
            root_value=root_value,
            sub_response=sub_response,
        )

    def encode_json(self, data: object) -> str:
        """orjson, about 15 times faster than json.dumps on a dashboard response. A text
        frame, not bytes: over WebSocket bytes would go out as a binary frame. A string
        orjson refuses (a lone surrogate a client sent in) goes through json.dumps."""
        try:
            return orjson.dumps(data).decode()
        except TypeError:
            return json.dumps(data, separators=(",", ":"))

    async def render_graphql_ide(self, request: Request) -> Response:
        """GraphiQL from the app's own pinned files (app/graphiql.py), not a CDN: offline,
        Strawberry's page would stay a blank "Loading..."."""
        return graphiql_response()

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        add_codes(result.errors or [])
        return await super().process_result(request, result)

    async def get_context(self, request: Request | WebSocket, response: Any) -> Context:
        state = request.app.state
        principal: Principal | None = None
        auth_error: ChimeraError | None = None
        try:
            token = bearer_token(request.headers.get("authorization"))
            if token is not None:
                principal = await authenticate(state, token, charged_later=True)
        except ChimeraError as exc:
            auth_error = exc
        plan = PlanRecorder() if _plan_wanted(request, state.settings, principal) else None
        context = build_context(
            request, response, state.settings, state.stores, principal, auth_error, state.hub, plan
        )
        return context

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        """Authenticate a WebSocket in connection_init, before any subscription can start."""
        if context.principal is None:  # no Authorization header on the upgrade request
            params = context.connection_params or {}
            raw = params.get("Authorization") or params.get("authorization") or params.get("token")
            try:
                value = str(raw) if raw else ""
                token = bearer_token(value) if " " in value else value or None
                if token is None:
                    raise Unauthenticated("connection_init must carry a bearer token")
                context.principal = await authenticate(context.request.app.state, token)
            except ChimeraError as exc:
                raise ConnectionRejectionError(
                    {"message": exc.message, "code": exc.code.value}
                ) from exc
            context._loaders = context.fresh_loaders()
        return cast(UnsetType, UNSET)


PLAN_HEADER = "x-chimera-plan"


def _plan_wanted(
    request: Request | WebSocket, settings: Settings, principal: Principal | None
) -> bool:
    """A request's plan is recorded when it asks (``X-Chimera-Plan: 1``), in development for
    anyone, in production for admins only: it names the loaders and the store calls."""
    if isinstance(request, WebSocket):
        return False  # a connection's operations share one context, and it lives for hours
    asked = request.headers.get(PLAN_HEADER, "").strip().lower() in ("1", "true", "yes")
    if not asked or principal is None:
        return False
    return not settings.is_production or principal.role is Role.ADMIN


# A JSON escape of a UTF-16 surrogate, the only way one gets into decoded JSON text.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def has_lone_surrogate(raw: str | bytes, value: object) -> bool:
    """Whether decoded JSON holds a surrogate not paired into a character. Only looked for
    when the raw text escapes one at all, which almost no request does."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    if not _SURROGATE_ESCAPE.search(data):
        return False
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


async def authenticate(state: Any, credential: str, *, charged_later: bool = False) -> Principal:
    """The Principal a bearer credential stands for: an API key (`chk_...`), or a JWT (ours,
    HS256, or an identity provider's, RS256/ES256 against its JWKS) not revoked, of a tenant
    that still exists."""
    stores = state.stores
    if looks_like_key(credential) and stores.api_keys is not None:
        principal = await stores.api_keys.principal(credential)
    else:
        provider = getattr(state, "provider_tokens", None)
        if provider is not None and signed_by_provider(credential):
            principal = await provider.principal(credential)
        else:
            principal = decode_token(state.auth_secret, credential)
        # A metered request's charge checks the token's revocation in the same Redis call
        # (app/extensions/demand_control.py); anything else checks it here.
        if stores.revocations is not None and not (charged_later and state.settings.rate_limits):
            principal = await stores.revocations.ensure_valid(principal)
    checked: Principal = await state.tenants.check(state.stores.engine, principal)
    note_tenant(checked.tenant_slug)
    return checked


def refusal(error: ChimeraError) -> ExecutionResult:
    """A whole operation refused before it ran, with the error's code."""
    return ExecutionResult(
        data=None,
        errors=[GraphQLError(error.message, extensions=error.extensions, original_error=error)],
    )


async def _streamed(result: ExecutionResult) -> AsyncGenerator[ExecutionResult, None]:
    """A refusal as an event stream's only result: graphql-sse reports errors in the stream."""
    yield result


@lru_cache(maxsize=256)
def only_reads(query: str | None, operation_name: str | None, *, subscriptions: bool) -> bool:
    """Whether the operation a GET would run is a query (or, asking for an event stream, a
    subscription), as far as a document that does not parse, or names no such operation,
    can say: execution reports those."""
    allowed = (
        {OperationType.QUERY, OperationType.SUBSCRIPTION}
        if subscriptions
        else {OperationType.QUERY}
    )
    if query is None:
        return True
    try:
        document = parse(query)
    except GraphQLError:
        return True
    for definition in document.definitions:
        if (
            isinstance(definition, OperationDefinitionNode)
            and definition.operation not in allowed
            and (
                operation_name is None
                or (definition.name is not None and definition.name.value == operation_name)
            )
        ):
            return False
    return True


def persisted_hash_or_error(extensions: object) -> str | None:
    """The persisted document a request names; a malformed extension is left to the
    resolution to refuse, as a GraphQL error rather than an HTTP one."""
    try:
        return persisted_hash(extensions)
    except ChimeraError:
        return "malformed"


def error_response(status: int, message: str, code: ErrorCode, media: str = JSON) -> Response:
    """A request refused before it was a GraphQL request (malformed body, wrong method)."""
    body: dict[str, Any] = {"errors": [{"message": message, "extensions": {"code": code.value}}]}
    if media != GRAPHQL_RESPONSE_JSON:
        body = {"data": None, **body}
    return JSONResponse(body, status_code=status, media_type=media)
