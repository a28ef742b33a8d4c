"""The embedded engines are real servers that keep their data across restarts."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import redis

from app.stores.postgres.embedded import ensure_database, start_embedded_postgres
from app.stores.redis.embedded import start_embedded_redis


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
