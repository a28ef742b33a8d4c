"""The `chimera` command line, run as a user runs it."""

from __future__ import annotations

import hashlib
import json
import re
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import jwt
import pytest
import pytest_asyncio
from httpx import AsyncClient
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from app import migrations
from app.auth import ALGORITHM
from app.schema import schema_sdl
from app.stores.postgres.embedded import installed_major
from app.stores.postgres.engine import create_engine
from tests.engines import create_database, drop_database
from tests.processes import ROOT, chimera_env, closed_port_url, free_port, run_chimera
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
    tasks = healthy.stdout.splitlines()[2]
    assert tasks.startswith("tasks     ok") and " queued, " in tasks and " dead" in tasks
    down = run_chimera("doctor", env={**env, "REDIS_URL": closed_port_url("redis")})
    assert down.returncode == 1
    assert down.stdout.splitlines()[1].startswith("redis     DOWN")
    # Enqueues set to wait for a replica this Redis does not have: said before any request.
    waiting = run_chimera("doctor", env={**env, "CHIMERA_TASK_REPLICAS": "1"})
    assert waiting.returncode == 1
    redis_line = waiting.stdout.splitlines()[1]
    assert redis_line.startswith("redis     DOWN"), waiting.stdout
    assert "0 replicas attached, but CHIMERA_TASK_REPLICAS=1" in redis_line


def test_unreachable_database_fails_start_up_with_one_line_naming_the_store(redis_url: str) -> None:
    result = run_chimera(
        "serve",
        "--port",
        str(free_port()),
        env=chimera_env(DATABASE_URL=closed_port_url("postgresql"), REDIS_URL=redis_url),
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("chimera: error: PostgreSQL is unavailable")


def test_production_without_urls_refuses_to_start_embedded_engines() -> None:
    result = run_chimera("serve", env=chimera_env(CHIMERA_ENV="production"))
    assert result.returncode == 2
    assert "DATABASE_URL and REDIS_URL must be set" in result.stderr
    assert "Traceback" not in result.stderr


def test_invalid_configuration_is_one_clear_line() -> None:
    result = run_chimera("doctor", env=chimera_env(CHIMERA_ENV="staging"))
    assert result.returncode == 2
    assert "invalid configuration" in result.stderr and "Traceback" not in result.stderr


def _refused_before_anything_ran(result: subprocess.CompletedProcess[str], expected: str) -> None:
    """Exit status 2 and one line naming the problem, with nothing printed before it."""
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == "", "printed before refusing"
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("chimera: error: ") and expected in result.stderr


async def _migrated(database_url: str) -> bool:
    engine = create_engine(database_url, timeout=10)
    try:
        return await migrations.current_revision(engine) is not None
    finally:
        await engine.dispose()


COMPOSE_FALLBACK_SECRET = "change-me-local-compose-secret-0123456789abcdef"


async def test_production_refuses_a_missing_placeholder_or_weak_secret_before_migrating(
    fresh_db: str, redis_url: str, tmp_path: Path
) -> None:
    production = chimera_env(
        CHIMERA_ENV="production",
        DATABASE_URL=fresh_db,
        REDIS_URL=redis_url,
        CHIMERA_DATA_DIR=str(tmp_path),
    )
    cases = {
        "": "CHIMERA_AUTH_SECRET must be set in production",
        COMPOSE_FALLBACK_SECRET: "CHIMERA_AUTH_SECRET is a placeholder",
        "x" * 64: "CHIMERA_AUTH_SECRET is too weak",
        "too-short": "CHIMERA_AUTH_SECRET must be at least 32 characters",
    }
    for secret, expected in cases.items():
        env = {**production, "CHIMERA_AUTH_SECRET": secret} if secret else production
        result = run_chimera("serve", "--port", str(free_port()), env=env)
        _refused_before_anything_ran(result, expected)
    assert not await _migrated(fresh_db)


async def test_a_taken_port_is_refused_before_anything_is_migrated_or_printed(
    fresh_db: str, redis_url: str, tmp_path: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_chimera(
            "serve",
            "--port",
            str(port),
            env=chimera_env(
                DATABASE_URL=fresh_db, REDIS_URL=redis_url, CHIMERA_DATA_DIR=str(tmp_path)
            ),
        )
    _refused_before_anything_ran(result, f"cannot listen on 127.0.0.1:{port}")
    assert not await _migrated(fresh_db)


def test_a_database_or_redis_url_that_cannot_work_is_one_line_not_a_traceback(
    tmp_path: Path,
) -> None:
    cases = {
        ("DATABASE_URL", "mysql://root:pw@db:3306/chimera"): "not a PostgreSQL URL",
        ("DATABASE_URL", "postgresql://u:pw@db:port/chimera"): "not a URL SQLAlchemy can read",
        ("REDIS_URL", "http://cache:6379"): "must be a redis:// or rediss:// or unix:// or",
        ("REDIS_URL", "redis://cache:99999/0"): "not a valid URL",
        ("WEAVIATE_URL", "weaviate:8080"): "must be a http:// or https:// URL",
    }
    for (name, value), expected in cases.items():
        result = run_chimera(
            "serve",
            "--port",
            str(free_port()),
            env=chimera_env(**{name: value, "CHIMERA_DATA_DIR": str(tmp_path)}),
        )
        _refused_before_anything_ran(result, f"invalid configuration: {name}: {expected}")
        assert "pw" not in result.stderr, "a password was printed"


def test_serve_and_doctor_say_when_the_data_directory_is_another_postgres_major(
    tmp_path: Path,
) -> None:
    installed = installed_major()
    older = str(int(installed or "18") - 1)
    (tmp_path / "postgres").mkdir()
    (tmp_path / "postgres" / "PG_VERSION").write_text(f"{older}\n")
    env = chimera_env(CHIMERA_DATA_DIR=str(tmp_path))
    expected = f"holds PostgreSQL {older} data, but the embedded server is PostgreSQL {installed}"

    served = run_chimera("serve", "--port", str(free_port()), env=env)
    assert served.returncode == 1 and served.stdout == ""
    assert served.stderr.count("\n") == 1 and "Traceback" not in served.stderr
    assert served.stderr.startswith("chimera: error: ") and expected in served.stderr

    doctor = run_chimera("doctor", env=env)
    assert doctor.returncode == 1
    first = doctor.stdout.splitlines()[0]
    assert first.startswith("postgres  DOWN") and expected in first
    assert doctor.stdout.splitlines()[1].startswith("redis     ok")  # still checked


async def test_audit_prune_deletes_old_entries_and_audits_itself(
    fresh_db: str, redis_url: str
) -> None:
    env = chimera_env(DATABASE_URL=fresh_db, REDIS_URL=redis_url, CHIMERA_AUTH_SECRET=SECRET)
    assert run_chimera("seed", "--demo", env=env).returncode == 0  # migrates too
    engine = create_engine(fresh_db, timeout=10)
    try:
        async with engine.connect() as conn:
            seeded = await conn.scalar(text("SELECT count(*) FROM audit_log"))
        assert seeded and seeded > 10
        future = run_chimera("audit", "prune", "--before", "2999-01-01", env=env)
        assert future.returncode == 1 and "in the future" in future.stderr
        bad = run_chimera("audit", "prune", "--before", "last week", env=env)
        assert bad.returncode == 2 and "ISO 8601" in bad.stderr
        untouched = run_chimera("audit", "prune", "--before", "2000-01-01", env=env)
        assert untouched.returncode == 0 and "no audit entries" in untouched.stdout
        pruned = run_chimera("audit", "prune", "--before", datetime.now(UTC).isoformat(), env=env)
        assert pruned.returncode == 0, pruned.stderr
        assert f": {seeded} entries before" in pruned.stdout
        async with engine.connect() as conn:
            left = (await conn.execute(text("SELECT action, after FROM audit_log"))).all()
        assert [row.action for row in left] == ["audit.prune"]
        assert left[0].after["deleted"] == seeded
        with pytest.raises(DBAPIError, match="append-only"):
            async with engine.begin() as conn:
                await conn.execute(text("DELETE FROM audit_log"))
    finally:
        await engine.dispose()


async def test_tenant_limits_are_shown_set_and_cleared_from_the_command_line(
    fresh_db: str, redis_url: str
) -> None:
    env = chimera_env(DATABASE_URL=fresh_db, REDIS_URL=redis_url, CHIMERA_AUTH_SECRET=SECRET)
    assert run_chimera("tenant", "create", "acme-co", env=env).returncode == 0
    shown = run_chimera("tenant", "limits", "acme-co", env=env)
    assert shown.returncode == 0, shown.stderr
    assert re.search(r"max-cost\s+10000\s+\(default;", shown.stdout), shown.stdout
    changed = run_chimera(
        "tenant", "limits", "acme-co", "--capacity", "500", "--per-second", "2.5", env=env
    )
    assert changed.returncode == 0, changed.stderr
    assert re.search(r"capacity\s+500\s+\(set;", changed.stdout), changed.stdout
    assert re.search(r"per-second\s+2.5\s+\(set;", changed.stdout), changed.stdout
    cleared = run_chimera("tenant", "limits", "acme-co", "--capacity", "default", env=env)
    assert re.search(r"capacity\s+200000\s+\(default;", cleared.stdout), cleared.stdout
    assert re.search(r"per-second\s+2.5\s+\(set;", cleared.stdout), cleared.stdout
    for bad, says in (("-3", "greater than 0"), ("lots", "a number or 'default'")):
        refused = run_chimera("tenant", "limits", "acme-co", "--max-cost", bad, env=env)
        assert refused.returncode == 1 and says in refused.stderr, refused.stderr
        assert refused.stderr.strip().count("\n") == 0
    missing = run_chimera("tenant", "limits", "nobody", env=env)
    assert missing.returncode == 1 and "no tenant 'nobody'" in missing.stderr


async def test_documents_add_registers_a_client_builds_manifests_once(
    fresh_db: str, redis_url: str, tmp_path: Path
) -> None:
    env = chimera_env(DATABASE_URL=fresh_db, REDIS_URL=redis_url, CHIMERA_AUTH_SECRET=SECRET)
    one = "query One { viewer { role } }"
    two = "query Two { campaigns { totalCount } }"
    apollo = tmp_path / "persisted-query-manifest.json"
    apollo.write_text(
        json.dumps(
            {
                "format": "apollo-persisted-query-manifest",
                "version": 1,
                "operations": [{"id": _sha(one), "name": "One", "type": "query", "body": one}],
            }
        )
    )
    relay = tmp_path / "persisted_queries.json"
    relay.write_text(json.dumps({_sha(one): one, _sha(two): two}))
    loose = tmp_path / "Three.graphql"
    loose.write_text("query Three { agents { totalCount } }")
    added = run_chimera("documents", "add", str(apollo), str(relay), str(loose), env=env)
    assert added.returncode == 0, added.stderr
    assert "3 documents registered, 0 already were (3 in all)" in added.stdout
    again = run_chimera("documents", "add", str(relay), env=env)
    assert "0 documents registered, 2 already were" in again.stdout
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps({"0" * 64: one}))
    refused = run_chimera("documents", "add", str(forged), env=env)
    assert refused.returncode == 1 and "is not the SHA-256 of its document" in refused.stderr
    broken = tmp_path / "broken.graphql"
    broken.write_text("query {")
    refused = run_chimera("documents", "add", str(broken), env=env)
    assert refused.returncode == 1 and "does not parse" in refused.stderr


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


async def test_apikey_create_prints_the_key_once_and_token_revoke_voids_a_token(
    fresh_db: str, redis_url: str
) -> None:
    env = chimera_env(DATABASE_URL=fresh_db, REDIS_URL=redis_url, CHIMERA_AUTH_SECRET=SECRET)
    assert run_chimera("tenant", "create", "acme-co", env=env).returncode == 0
    created = run_chimera(
        "apikey", "create", "--tenant", "acme-co", "--role", "editor", "--name", "etl", env=env
    )
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert re.fullmatch(r"chk_[A-Za-z0-9]{12}_[A-Za-z0-9_-]{43}", key), key
    assert "only time it is shown" in created.stderr and key not in created.stderr
    missing = run_chimera(
        "apikey", "create", "--tenant", "nobody", "--role", "viewer", "--name", "x", env=env
    )
    assert missing.returncode == 1 and "no tenant 'nobody'" in missing.stderr

    token = run_chimera("token", "--tenant", "acme-co", "--role", "admin", env=env).stdout.strip()
    revoked = run_chimera("token", "revoke", token, env=env)
    assert revoked.returncode == 0, revoked.stderr
    assert "revoked" in revoked.stdout
    claims = jwt.decode(token, SECRET, algorithms=[ALGORITHM])
    from app.revocations import revoked_key
    from app.stores.redis.client import create_redis

    redis = create_redis(redis_url, timeout=5)
    try:
        assert await redis.exists(revoked_key(uuid.UUID(claims["tid"]), claims["jti"]))
    finally:
        await redis.aclose()
    old = jwt.encode({k: v for k, v in claims.items() if k != "jti"}, SECRET, algorithm=ALGORITHM)
    refused = run_chimera("token", "revoke", old, env=env)
    assert refused.returncode == 1 and "cannot be revoked" in refused.stderr


@pytest.mark.parametrize(
    ("variable", "value"), [("OTEL_TRACES_EXPORTER", "zipkin"), ("OTEL_METRICS_EXPORTER", "statsd")]
)
def test_serve_refuses_an_otel_exporter_it_cannot_use_before_anything_starts(
    variable: str, value: str
) -> None:
    result = run_chimera("serve", env=chimera_env(**{variable: value}))
    _refused_before_anything_ran(result, f"{variable} names {value}")
