"""Session-wide stores and app: one database per run, one tenant (or two) per test.

Every row belongs to a tenant and every test makes its own tenants, so tests never see each
other's data and need no truncation between them.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
import pytest_asyncio
from asgi_lifespan import LifespanManager
from httpx import ASGITransport, AsyncClient
from pytest_httpserver import HTTPServer
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from app import migrations
from app.main import create_app
from app.settings import Settings
from app.stores.postgres.engine import create_engine
from tests.engines import (
    create_database,
    drop_database,
    embedded_postgres_server,
    has_extension,
    postgres_server,
    redis_server,
)
from tests.moto import moto_server
from tests.serving import served
from tests.support import HEALTH_TOKEN, SECRET, TenantClient, new_tenant

# The fixtures through which a test reaches PostgreSQL or Redis: TEST_DATABASE_URL and
# TEST_REDIS_URL choose the servers behind them, and nothing else in the suite reads those.
STORE_FIXTURES = frozenset({"pg_server_url", "redis_url"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark ``stores`` the tests that reach the session's PostgreSQL or Redis. CI runs the
    suite again on the machine's PostgreSQL 15 and Redis 7 with ``-m stores``: the other
    tests (pure code, or processes that start embedded engines of their own) would only
    repeat what the first pass ran, on the same engines."""
    for item in items:
        if STORE_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.stores)


@pytest.fixture(scope="session")
def make_httpserver() -> Iterator[HTTPServer]:
    """pytest-httpserver's server (the fake Weaviate's REST side, OTLP receivers), answering
    each connection on a thread of its own, as the servers it stands in for do. Its default
    is one connection at a time: a connection a client opened and then dropped unused (a
    request cancelled before it was sent) held the whole server until the client closed, and
    every later request of the test timed out behind it."""
    server = HTTPServer(threaded=True)
    server.start()
    yield server
    server.clear()
    if server.is_running():
        server.stop()


@pytest.fixture(scope="session")
def engines_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("engines")


@pytest.fixture(scope="session")
def pg_server_url(engines_dir: Path) -> Iterator[str]:
    with postgres_server(engines_dir) as url:
        yield url


@pytest.fixture(scope="session")
def redis_url(engines_dir: Path) -> Iterator[str]:
    with redis_server(engines_dir) as url:
        yield url


@pytest_asyncio.fixture(scope="session")
async def database_url(pg_server_url: str) -> AsyncIterator[str]:
    url = await create_database(pg_server_url)
    engine = create_engine(url, timeout=10)
    try:
        await migrations.upgrade(engine)
    finally:
        await engine.dispose()
    yield url
    await drop_database(url)


UNTHROTTLED = 1_000_000_000


@pytest.fixture(scope="session")
def settings(database_url: str, redis_url: str, pgvector_url: str, engines_dir: Path) -> Settings:
    return Settings(
        database_url=database_url,
        redis_url=redis_url,
        pgvector_url=pgvector_url,
        # Tests index explicitly (tests/indexing.py) so that what they assert is not racing a
        # background task; the in-process indexer itself is tested through `chimera serve`.
        indexer_enabled=False,
        # The S3 tests share this database with their own app; a sweeper here would clear
        # their tombstones against the wrong store.
        media_sweep_seconds=0,
        auth_secret=SECRET,
        health_token=HEALTH_TOKEN,
        data_dir=engines_dir / "data",
        public_url="http://test",  # media URLs then route to the in-process app
        ws_keepalive_seconds=1.0,  # a silent peer is found in seconds
        # Buckets no test fills by accident: a test client reuses its token, as real ones
        # do, and a suite sends far more than a dashboard. Every request is still charged;
        # the rate-limit tests set small limits on their own tenants (their rows).
        tenant_rate_capacity=UNTHROTTLED,
        tenant_rate_per_second=UNTHROTTLED,
        client_rate_capacity=UNTHROTTLED,
        client_rate_per_second=UNTHROTTLED,
    )


@pytest_asyncio.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[Starlette]:
    application = create_app(settings)
    async with LifespanManager(application):
        yield application


@pytest.fixture(scope="session")
def engine(app: Starlette) -> AsyncEngine:
    stores_engine: AsyncEngine = app.state.stores.engine
    return stores_engine


@pytest_asyncio.fixture(scope="session")
async def http(app: Starlette) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://test") as client:
        yield client


@pytest_asyncio.fixture(scope="session")
async def pgvector_url(pg_server_url: str, engines_dir: Path) -> AsyncIterator[str]:
    """A database with the vector extension: TEST_PGVECTOR_URL, the test server when it has
    pgvector, or else an embedded PostgreSQL of its own (the machine's PG 15 has none)."""
    external = os.environ.get("TEST_PGVECTOR_URL")
    if external:
        yield external.replace("postgresql://", "postgresql+asyncpg://", 1)
        return
    with ExitStack() as stack:
        server_url = pg_server_url
        if not await has_extension(pg_server_url, "vector"):
            server_url = stack.enter_context(embedded_postgres_server(engines_dir / "pgvector"))
        url = await create_database(server_url, prefix="chimera_vectors")
        yield url
        await drop_database(url)


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    with moto_server() as endpoint:
        yield endpoint


@pytest_asyncio.fixture(scope="session")
async def live_url(app: Starlette) -> AsyncIterator[str]:
    """The session app behind a real uvicorn on 127.0.0.1, for WebSocket clients."""
    async with served(app) as host:
        yield host


@pytest_asyncio.fixture
async def tenant(engine: AsyncEngine, http: AsyncClient) -> TenantClient:
    return await new_tenant(engine, http)


@pytest_asyncio.fixture
async def other_tenant(engine: AsyncEngine, http: AsyncClient) -> TenantClient:
    return await new_tenant(engine, http)
