"""What GraphQL over HTTP says a response looks like, by the media type the client accepts.

The GraphQL over HTTP specification gives two response media types. With
``application/graphql-response+json`` the status code carries meaning: a request error (the
document did not parse or validate, a variable did not coerce, the caller was refused before
anything ran) is a 4xx without a ``data`` entry, and anything that executed is a 200. With
``application/json``, the legacy type, every well-formed request is a 200 whose body says
what went wrong; clients written before the specification rely on that, so it stays the
default when a client names neither (no Accept, or ``*/*``).

One table maps the error codes of a refused request to status codes, so HTTP, GET, SSE and
the error table in docs/transports.md cannot disagree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from graphql import GraphQLError

from app.errors import ErrorCode

GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
JSON = "application/json"

# The status of a request refused before execution, by its first error's code. Execution
# results, whatever their errors, are 200: the client has data (or null data) to read.
REQUEST_ERROR_STATUS: Mapping[str, int] = {
    ErrorCode.BAD_USER_INPUT: 400,
    ErrorCode.OPERATION_LIMIT: 400,
    ErrorCode.PERSISTED_QUERY_NOT_FOUND: 400,
    ErrorCode.PERSISTED_QUERY_NOT_SUPPORTED: 400,
    ErrorCode.UNAUTHENTICATED: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.COST_LIMIT: 400,  # priced over the maximum: it never fits, unlike RATE_LIMITED
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.STORE_UNAVAILABLE: 503,
    ErrorCode.INTERNAL_SERVER_ERROR: 500,
}

# Headers a page's script cannot add to a cross-site request without the browser asking
# the server first (a CORS preflight, which this API does not grant): a GET carrying one
# was sent by a client, not by a forged link or form. Authorization is the API's credential;
# the other two are what GraphQL clients send for exactly this purpose.
PREFLIGHT_HEADERS = ("authorization", "graphql-require-preflight", "apollo-require-preflight")


@lru_cache(maxsize=64)
def negotiate(accept: str | None) -> str:
    """The response media type for an Accept header: the supported one it ranks highest
    (by q, then graphql-response+json first), application/json when it names neither."""
    if not accept:
        return JSON
    best, best_rank = JSON, (0.0, 0)
    for part in accept.split(","):
        name, _, params = part.partition(";")
        name = name.strip().lower()
        if name not in (GRAPHQL_RESPONSE_JSON, JSON):
            continue
        quality = 1.0
        for param in params.split(";"):
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value.strip())
                except ValueError:
                    quality = 0.0
        rank = (quality, 1 if name == GRAPHQL_RESPONSE_JSON else 0)
        if quality > 0 and rank > best_rank:
            best, best_rank = name, rank
    return best


def is_request_error(body: Mapping[str, Any]) -> bool:
    """Whether a processed result is a request error: no data, and errors none of which
    happened at a position of the response (parse, validation, coercion, refusals)."""
    errors: Sequence[Mapping[str, Any]] = body.get("errors") or ()
    return body.get("data") is None and bool(errors) and all("path" not in e for e in errors)


def refused_before_execution(data: object, errors: Sequence[GraphQLError]) -> bool:
    """The same test on a result not yet formatted."""
    return data is None and bool(errors) and all(e.path is None for e in errors)


def request_error_status(errors: Sequence[Mapping[str, Any]]) -> int:
    code = (errors[0].get("extensions") or {}).get("code") if errors else None
    return REQUEST_ERROR_STATUS.get(str(code), 400)


def carries_preflight_header(headers: Mapping[str, str]) -> bool:
    return any(headers.get(name) for name in PREFLIGHT_HEADERS)
