"""The composition root: settings in, a Starlette app out. Nothing is connected at import."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from opentelemetry.trace import Tracer
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route, WebSocketRoute
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL

from app.access_log import AccessLog
from app.auth import auth_secret
from app.body_limit import BodyLimitMiddleware
from app.cors import cors_middleware
from app.dashboard.routes import dashboard_routes
from app.events.hub import StreamHub
from app.graphiql import graphiql_routes
from app.graphql_view import ChimeraGraphQL
from app.health import healthz, readyz
from app.jwks import ProviderTokens
from app.known_tenants import KnownTenants
from app.lifespan import (
    Stores,
    background_indexer,
    background_key_use,
    background_refunds,
    background_replica_watch,
    background_sweeper,
    event_fanout,
    open_stores,
)
from app.media_routes import serve_media
from app.ratelimit.limits import default_limits
from app.schema import build_schema
from app.settings import Settings, load_settings
from app.sse import SSE_PROTOCOL, quiet_deliberate_drops
from app.stopping import bounded_teardown, stop_task
from app.stores.vectors.cached import SimilarCache
from app.telemetry import Telemetry, instrumented, telemetry_from_environment
from app.telemetry.metrics import Metrics, keep_refreshed, metrics_from_environment
from app.telemetry.metrics_route import serve_metrics
from app.telemetry.store_gauges import store_readers


def create_app(
    settings: Settings | None = None,
    telemetry: Telemetry | None = None,
    metrics: Metrics | None = None,
) -> Starlette:
    """The app for ``settings``, tracing into ``telemetry`` and recording into ``metrics``
    (by default: whatever the ``OTEL_*`` variables configure; no tracing when they configure
    nothing, and metrics on ``/metrics`` always)."""
    settings = settings or load_settings()
    telemetry = telemetry or telemetry_from_environment()
    metrics = metrics or metrics_from_environment()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            # The instrumented clients trace requests, not the background loops' polls.
            with instrumented(telemetry, weaviate=settings.uses_weaviate):
                tracer = telemetry.tracer("chimera.loaders") if telemetry else None
                async with (
                    bounded_teardown(settings.shutdown_grace_seconds, "shutdown") as stopping,
                    _stores_and_background(settings, app.state.auth_secret, tracer, metrics) as (
                        stores,
                        hub,
                    ),
                ):
                    refresher = asyncio.create_task(
                        keep_refreshed(
                            metrics, store_readers(stores), settings.metrics_refresh_seconds
                        ),
                        name="metrics refresher",
                    )
                    app.state.stores = stores
                    app.state.hub = hub
                    # Garbage collection was the tail of delivery latency
                    # (bench/subscriptions.py: p99 402 -> 154 ms with both changes).
                    # Everything built so far (schema, models, pools) lives as long as the
                    # process: frozen, full collections skip it. A larger first generation
                    # lets the many short-lived objects of each event die young instead of
                    # being promoted, so the long pauses of full collections come rarely.
                    gc.collect()
                    gc.freeze()
                    gc.set_threshold(50_000, 20, 20)
                    try:
                        yield
                    finally:
                        stopping()
                        await stop_task(refresher)
        finally:
            metrics.shutdown()

    protocols = [GRAPHQL_TRANSPORT_WS_PROTOCOL, SSE_PROTOCOL]
    if settings.legacy_graphql_ws:
        protocols.append(GRAPHQL_WS_PROTOCOL)
    graphql = ChimeraGraphQL(
        build_schema(
            settings, tracer_provider=telemetry.provider if telemetry else None, metrics=metrics
        ),
        graphql_ide=None if settings.is_production else "graphiql",
        allow_queries_via_get=True,  # behind CSRF protection; mutations 405 (ChimeraGraphQL)
        keep_alive=True,
        keep_alive_interval=settings.ws_keepalive_seconds,
        subscription_protocols=protocols,
        connection_init_wait_timeout=timedelta(seconds=10),
        max_subscriptions_per_connection=settings.max_subscriptions_per_connection,
    )
    graphql.hide_suggestions = settings.is_production
    quiet_deliberate_drops()
    app = Starlette(
        routes=[
            # The body cap guards the GraphQL endpoint; media uploads have their own, larger one.
            Route(
                "/graphql",
                BodyLimitMiddleware(graphql, max_bytes=settings.max_body_bytes),
                methods=["GET", "POST"],
            ),
            WebSocketRoute("/graphql", graphql),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", serve_metrics),
            Route("/media/{key:path}", serve_media, methods=["GET", "HEAD", "PUT"]),
            *graphiql_routes(settings),  # GraphiQL's files, served by the app (dev only)
            *dashboard_routes(),  # the reference client, at /
        ],
        lifespan=lifespan,
        # The trace's server span first, so that the access line can name its trace.
        middleware=[
            *([] if telemetry is None else [Middleware(telemetry.wrap_asgi)]),
            *([Middleware(AccessLog)] if settings.access_log else []),
            # Inside the access log, so that a refused preflight is a line there too.
            *cors_middleware(settings),
        ],
    )
    app.state.settings = settings
    app.state.event_streams = set()  # open SSE streams, ended when the server stops (app/sse.py)
    app.state.telemetry = telemetry
    app.state.metrics = metrics
    app.state.provider_tokens = (
        ProviderTokens(
            settings.jwks_url,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            timeout=settings.store_timeout_seconds,
        )
        if settings.jwks_url
        else None
    )
    app.state.tenants = KnownTenants(settings.store_timeout_seconds, default_limits(settings))
    # Read once: fails at start-up, not on the first request, when it is missing.
    app.state.auth_secret = auth_secret(settings)
    return app


@asynccontextmanager
async def _stores_and_background(
    settings: Settings, secret: str, tracer: Tracer | None, metrics: Metrics
) -> AsyncIterator[tuple[Stores, StreamHub]]:
    """Every store, and the work that runs beside the requests for as long as they do."""
    async with open_stores(settings, secret) as stores:
        stores.tracer, stores.metrics = tracer, metrics
        if isinstance(stores.vectors, SimilarCache):
            stores.vectors.metrics = metrics
        if stores.replicas is not None:
            stores.replicas.metrics = metrics
        async with _background(settings, stores) as hub:
            yield stores, hub


@asynccontextmanager
async def _background(settings: Settings, stores: Stores) -> AsyncIterator[StreamHub]:
    async with (
        background_sweeper(stores, settings.media_sweep_seconds),
        background_indexer(stores, settings),
        background_refunds(stores),
        background_key_use(stores),
        background_replica_watch(stores),
        event_fanout(stores, settings) as hub,
    ):
        yield hub
