"""Where the test suite's stores come from: the embedded engines, or TEST_*_URL servers.

Each run gets a database of its own (created here, dropped at the end), so the suite can run
against a shared server, such as CI's PostgreSQL, without touching anything else on it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from app import migrations
from app.stores.postgres.embedded import start_embedded_postgres
from app.stores.postgres.engine import create_engine
from app.stores.redis.embedded import start_embedded_redis


async def _connect_admin(url: str) -> asyncpg.Connection:
    parsed = make_url(url)
    socket_dir = parsed.query.get("host")
    return await asyncpg.connect(
        host=str(socket_dir) if socket_dir else parsed.host,
        port=parsed.port or 5432,
        user=parsed.username or "postgres",
        password=parsed.password,
        database="postgres",
    )


async def has_extension(url: str, name: str) -> bool:
    conn = await _connect_admin(url)
    try:
        return bool(
            await conn.fetchval(
                "SELECT count(*) FROM pg_available_extensions WHERE name = $1", name
            )
        )
    finally:
        await conn.close()


@contextmanager
def embedded_postgres_server(pgdata: Path) -> Iterator[str]:
    server = start_embedded_postgres(pgdata, delete_on_stop=True)
    try:
        yield server.url("postgres")
    finally:
        server.stop()


async def _admin(url: str, statement: str) -> None:
    conn = await _connect_admin(url)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def with_database(url: str, name: str) -> str:
    return make_url(url).set(database=name).render_as_string(hide_password=False)


@contextmanager
def postgres_server(tmp: Path) -> Iterator[str]:
    """A server URL (any database): TEST_DATABASE_URL, or an embedded server in ``tmp``."""
    external = os.environ.get("TEST_DATABASE_URL")
    if external:
        url = external.replace("postgresql://", "postgresql+asyncpg://", 1)
        yield url
        return
    with embedded_postgres_server(tmp / "postgres") as url:
        yield url


async def create_database(server_url: str, prefix: str = "chimera_test") -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    await _admin(server_url, f'CREATE DATABASE "{name}"')
    return with_database(server_url, name)


async def drop_database(url: str) -> None:
    name = make_url(url).database
    await _admin(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@asynccontextmanager
async def migrated_engine(server_url: str, prefix: str) -> AsyncIterator[AsyncEngine]:
    """An engine on a database of its own, migrated to head, dropped afterwards: for tests
    that need the outbox or the counters to themselves."""
    url = await create_database(server_url, prefix=prefix)
    engine = create_engine(url, timeout=10)
    try:
        await migrations.upgrade(engine)
        yield engine
    finally:
        await engine.dispose()
        await drop_database(url)


def redis_database_of_this_worker(url: str) -> str:
    """``url`` for this pytest-xdist worker: gw0 keeps its database, gw1 takes the one below,
    and so on. The app keeps keys that are not a tenant's (the relay's partitions, API keys,
    persisted documents), and two workers' apps over different PostgreSQL databases must not
    share them."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw"):
        return url
    parsed = urlsplit(url)
    base = int(parsed.path.strip("/") or 0)
    database = base - int(worker[2:])
    if database < 0:
        raise RuntimeError(
            f"TEST_REDIS_URL names database {base}, which leaves none for worker {worker}: "
            "name a higher one (redis://host:6379/15) or run one worker (PYTEST_WORKERS=0)"
        )
    return urlunsplit(parsed._replace(path=f"/{database}"))


@contextmanager
def redis_server(tmp: Path) -> Iterator[str]:
    """A Redis URL: TEST_REDIS_URL; with TEST_REDIS_CLUSTER=1, a Redis Cluster of six nodes
    started here (`make test-cluster`); else an embedded server in ``tmp``."""
    external = os.environ.get("TEST_REDIS_URL")
    if external:
        yield redis_database_of_this_worker(external)
        return
    if os.environ.get("TEST_REDIS_CLUSTER", "").lower() in ("1", "true", "yes"):
        from tests.redis_cluster import loopback_cluster  # it imports the app

        with loopback_cluster(tmp / "redis-cluster") as cluster:
            yield cluster.url
        return
    server = start_embedded_redis(tmp / "redis", persist=False)
    try:
        yield server.url
    finally:
        server.stop()
