"""Which operation of a document a request runs, when the document has several.

The GraphQL spec's GetOperation (and graphql-core) refuse a document of several operations
that the request does not choose from by ``operationName``. Strawberry puts the first
operation's name in its place before graphql-core sees the request, so the first one ran,
a mutation included. Every transport asks here first: the HTTP view (POST, GET, SSE) and
both WebSocket protocols (app/ws_protocol.py).
"""

from __future__ import annotations

from functools import lru_cache

from graphql import GraphQLError, OperationDefinitionNode, parse

from app.errors import BadUserInput, ChimeraError

MULTIPLE_OPERATIONS = "Must provide operation name if query contains multiple operations."


def unchosen_operation(
    query: object, operation_name: object, max_tokens: int
) -> ChimeraError | None:
    """Why the operation a request runs cannot be chosen: the document has several and the
    request names none (graphql-core's message). Strawberry answers the other cases itself
    (an unknown name, a document with no operation) and execution reports a document that
    does not parse. A request that names its operation costs nothing here."""
    if operation_name is not None or not isinstance(query, str):
        return None
    if operation_count(query, max_tokens) > 1:
        return BadUserInput(MULTIPLE_OPERATIONS)
    return None


@lru_cache(maxsize=256)
def operation_count(query: str, max_tokens: int) -> int:
    """How many operations a document defines; 0 when it does not parse, or has more tokens
    than a document may (``CHIMERA_MAX_TOKENS``): the parse Strawberry runs next refuses it
    with the right error, and a hostile document is not parsed past the limit here first.
    Cached: clients send the same few documents again and again."""
    try:
        document = parse(query, no_location=True, max_tokens=max_tokens)
    except GraphQLError:
        return 0
    return sum(isinstance(d, OperationDefinitionNode) for d in document.definitions)


def unchosen_operation_error(
    query: object, operation_name: object, max_tokens: int
) -> GraphQLError | None:
    """``unchosen_operation`` as a GraphQL error carrying its code, for a WebSocket's
    ``error`` message."""
    error = unchosen_operation(query, operation_name, max_tokens)
    if error is None:
        return None
    return GraphQLError(error.message, extensions=error.extensions, original_error=error)
