"""The composition root: settings in, a Starlette app out. Nothing is connected at import."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from starlette.applications import Starlette
from starlette.routing import Route, WebSocketRoute
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL

from app.auth import auth_secret
from app.body_limit import BodyLimitMiddleware
from app.graphiql import graphiql_routes
from app.graphql_view import ChimeraGraphQL
from app.health import healthz, readyz
from app.jwks import ProviderTokens
from app.known_tenants import KnownTenants
from app.lifespan import (
    background_indexer,
    background_key_use,
    background_refunds,
    background_sweeper,
    event_fanout,
    open_stores,
)
from app.media_routes import serve_media
from app.ratelimit.limits import default_limits
from app.schema import build_schema
from app.settings import Settings, load_settings


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with (
            open_stores(settings, app.state.auth_secret) as stores,
            background_sweeper(stores, settings.media_sweep_seconds),
            background_indexer(stores, settings),
            background_refunds(stores),
            background_key_use(stores),
            event_fanout(stores, settings) as hub,
        ):
            app.state.stores = stores
            app.state.hub = hub
            # Garbage collection was the tail of delivery latency (bench/subscriptions.py: p99
            # 402 -> 154 ms with both changes). Everything built so far (schema, models,
            # pools) lives as long as the process: frozen, full collections skip it. A larger
            # first generation lets the many short-lived objects of each event die young
            # instead of being promoted, so the long pauses of full collections come rarely.
            gc.collect()
            gc.freeze()
            gc.set_threshold(50_000, 20, 20)
            yield

    protocols = [GRAPHQL_TRANSPORT_WS_PROTOCOL]
    if settings.legacy_graphql_ws:
        protocols.append(GRAPHQL_WS_PROTOCOL)
    graphql = ChimeraGraphQL(
        build_schema(settings),
        graphql_ide=None if settings.is_production else "graphiql",
        allow_queries_via_get=True,  # persisted documents only (ChimeraGraphQL)
        keep_alive=True,
        keep_alive_interval=settings.ws_keepalive_seconds,
        subscription_protocols=protocols,
        connection_init_wait_timeout=timedelta(seconds=10),
        max_subscriptions_per_connection=settings.max_subscriptions_per_connection,
    )
    graphql.hide_suggestions = settings.is_production
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
            Route("/media/{key:path}", serve_media, methods=["GET", "HEAD", "PUT"]),
            *graphiql_routes(settings),  # GraphiQL's files, served by the app (dev only)
        ],
        lifespan=lifespan,
    )
    app.state.settings = settings
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
