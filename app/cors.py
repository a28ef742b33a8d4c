"""Cross-origin access for browser clients on other origins (CHIMERA_CORS_ORIGINS).

A dashboard served from its own origin calls the API with ``fetch``, and the browser asks
first (a preflight ``OPTIONS``) because every useful request carries ``Authorization`` or a
JSON ``Content-Type``. Starlette's CORSMiddleware answers for the listed origins only. No
credentials mode: the API reads bearer tokens, never cookies, so a page's ambient
credentials are worth nothing here and ``*`` grants no more than a token already does.

The headers named here are the ones the API reads or sends that a page may need:
- requested: the token, the JSON and GraphQL-over-HTTP content negotiation, the GET
  preflight markers (app/response_media.py), the plan header, an SSE resume's
  ``Last-Event-ID`` and the W3C trace context that the tracing honours;
- exposed: ``Retry-After`` of a 429 (so a client can back off) and ``WWW-Authenticate``.
Methods: GET and POST for /graphql, PUT (and GET, HEAD) for the embedded object store's
signed upload and download URLs at /media.
"""

from __future__ import annotations

from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware

from app.settings import Settings

ALLOWED_METHODS = ("GET", "HEAD", "POST", "PUT")
ALLOWED_HEADERS = (
    "Authorization",
    "Content-Type",
    "Accept",
    "GraphQL-Require-Preflight",
    "Apollo-Require-Preflight",
    "X-Chimera-Plan",
    "Last-Event-ID",
    "traceparent",
    "tracestate",
)
EXPOSED_HEADERS = ("Retry-After", "WWW-Authenticate")
# How long a browser may reuse a preflight's answer (Chromium caps it at two hours): ten
# minutes, so that an origin taken off the list loses access within that.
PREFLIGHT_MAX_AGE_SECONDS = 600


def cors_middleware(settings: Settings) -> list[Middleware]:
    """The CORS middleware for the configured origins, or none at all without them."""
    origins = settings.allowed_origins
    if not origins:
        return []
    return [
        Middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=ALLOWED_METHODS,
            allow_headers=ALLOWED_HEADERS,
            expose_headers=EXPOSED_HEADERS,
            allow_credentials=False,
            max_age=PREFLIGHT_MAX_AGE_SECONDS,
        )
    ]
