"""The `chimera` command line, run as a user runs it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import jwt
import pytest_asyncio
from httpx import AsyncClient

from app import migrations
from app.auth import ALGORITHM
from app.schema import schema_sdl
from tests.engines import create_database, drop_database
from tests.processes import ROOT, chimera_env, closed_port_url, run_chimera
from tests.support import SECRET


@pytest_asyncio.fixture
async def fresh_db(pg_server_url: str) -> AsyncIterator[str]:
    url = await create_database(pg_server_url, prefix="chimera_cli")
    yield url
    await drop_database(url)


def test_committed_schema_file_matches_the_code() -> None:
    committed = (ROOT / "schema.graphql").read_text()
    assert committed == schema_sdl(), "schema.graphql is stale: run `make schema` and commit it"


def test_export_schema_prints_the_sdl() -> None:
    result = run_chimera("export-schema", env=chimera_env())
    assert result.returncode == 0, result.stderr
    assert result.stdout == schema_sdl()


async def test_migrate_seed_tenant_and_token_work_on_a_fresh_database(
    fresh_db: str, redis_url: str, http: AsyncClient
) -> None:
    env = chimera_env(DATABASE_URL=fresh_db, REDIS_URL=redis_url, CHIMERA_AUTH_SECRET=SECRET)
    migrated = run_chimera("migrate", env=env)
    assert migrated.returncode == 0, migrated.stderr
    assert f"database at revision {migrations.head_revision()}" in migrated.stdout
    assert "created" in run_chimera("seed", "--demo", env=env).stdout
    assert "already exists" in run_chimera("seed", "--demo", env=env).stdout
    created = run_chimera("tenant", "create", "acme-co", env=env)
    assert created.returncode == 0, created.stderr
    duplicate = run_chimera("tenant", "create", "acme-co", env=env)
    assert duplicate.returncode == 1
    assert duplicate.stderr.strip().count("\n") == 0 and "already exists" in duplicate.stderr
    token = run_chimera("token", "--tenant", "acme-co", "--role", "viewer", env=env)
    assert token.returncode == 0, token.stderr
    claims = jwt.decode(token.stdout.strip(), SECRET, algorithms=[ALGORITHM])
    assert claims["tenant"] == "acme-co" and claims["role"] == "viewer"
    missing = run_chimera("token", "--tenant", "nobody", "--role", "admin", env=env)
    assert missing.returncode == 1 and "no tenant 'nobody'" in missing.stderr


def test_doctor_reports_each_store_and_exits_1_when_one_is_down(
    database_url: str, redis_url: str, pgvector_url: str, tmp_path: Path
) -> None:
    env = chimera_env(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        PGVECTOR_URL=pgvector_url,
        CHIMERA_DATA_DIR=str(tmp_path),
    )
    healthy = run_chimera("doctor", env=env)
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    assert healthy.stdout.splitlines()[0].startswith("postgres  ok")
    assert healthy.stdout.splitlines()[1].startswith("redis     ok")
    down = run_chimera("doctor", env={**env, "REDIS_URL": closed_port_url("redis")})
    assert down.returncode == 1
    assert down.stdout.splitlines()[1].startswith("redis     DOWN")


def test_unreachable_database_fails_start_up_with_one_line_naming_the_store(redis_url: str) -> None:
    result = run_chimera(
        "serve",
        "--port",
        "1",
        env=chimera_env(DATABASE_URL=closed_port_url("postgresql"), REDIS_URL=redis_url),
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("chimera: error: PostgreSQL is unavailable")


def test_production_without_urls_refuses_to_start_embedded_engines() -> None:
    result = run_chimera("serve", env=chimera_env(CHIMERA_ENV="production"))
    assert result.returncode == 1
    assert "DATABASE_URL and REDIS_URL must be set" in result.stderr
    assert "Traceback" not in result.stderr


def test_invalid_configuration_is_one_clear_line() -> None:
    result = run_chimera("doctor", env=chimera_env(CHIMERA_ENV="staging"))
    assert result.returncode == 1
    assert "invalid configuration" in result.stderr and "Traceback" not in result.stderr
