"""Settings refuse, at start-up, what would otherwise fail later or silently: URLs of the wrong
kind, weak production secrets, unknown log levels; and log lines carry a timestamp."""

from __future__ import annotations

import logging
import re

import pytest
from pydantic import ValidationError

from app.cli import print_banner
from app.logs import FORMAT, TimestampFormatter
from app.settings import Settings

STRONG = "3f9c1e0b7a5d4c2e8b6a9f1d0c3e5b7a"


@pytest.mark.parametrize(
    "secret",
    [
        "change-me-local-compose-secret-0123456789abcdef",  # docker-compose.yml's old fallback
        "please-CHANGEME-before-going-live-0000",
        "x" * 64,
        "abababababababababababababababab",
    ],
)
def test_production_refuses_placeholder_and_patterned_secrets(secret: str) -> None:
    with pytest.raises(ValidationError, match="CHIMERA_AUTH_SECRET is"):
        Settings(CHIMERA_ENV="production", CHIMERA_AUTH_SECRET=secret)


def test_a_random_secret_is_accepted_and_dev_does_not_judge_placeholders() -> None:
    assert Settings(CHIMERA_ENV="production", CHIMERA_AUTH_SECRET=STRONG).auth_secret
    placeholder = "change-me-local-compose-secret-0123456789abcdef"
    assert Settings(CHIMERA_ENV="dev", CHIMERA_AUTH_SECRET=placeholder).auth_secret


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DATABASE_URL", "mysql://root:hunter2@db/chimera"),
        ("DATABASE_URL", "postgresql://u:hunter2@db:notaport/chimera"),
        ("PGVECTOR_URL", "sqlite:///hunter2.db"),
        ("REDIS_URL", "http://u:hunter2@cache:6379"),
        ("REDIS_URL", "redis://u:hunter2@cache:99999/0"),
        ("WEAVIATE_URL", "weaviate:8080"),
        ("S3_ENDPOINT", "minio:9000"),
        ("CHIMERA_PUBLIC_URL", "ftp://files.example.com"),
    ],
)
def test_urls_of_the_wrong_kind_are_refused_without_echoing_them(name: str, value: str) -> None:
    with pytest.raises(ValidationError) as refused:
        Settings.model_validate({name: value})
    errors = refused.value.errors(include_input=False)
    assert [e["loc"] for e in errors] == [(name,)]
    assert "hunter2" not in str(errors)


def test_urls_people_paste_still_work() -> None:
    settings = Settings(
        DATABASE_URL="postgres://u:p@db:5432/chimera",
        REDIS_URL="rediss://cache:6380/1",
        WEAVIATE_URL="https://weaviate.internal",
        S3_ENDPOINT="http://minio:9000",
    )
    assert settings.database_url == "postgresql+asyncpg://u:p@db:5432/chimera"
    unix = Settings(
        DATABASE_URL="postgresql+asyncpg://postgres@/chimera?host=/tmp/x",
        REDIS_URL="unix:///run/redis.sock",
    )
    assert unix.redis_url == "unix:///run/redis.sock"
    cluster = Settings(REDIS_URL="redis+cluster://redis-node-1:6379/0")
    assert cluster.redis_url == "redis+cluster://redis-node-1:6379/0"


def test_log_level_is_read_in_any_case_and_checked() -> None:
    assert Settings().log_level == "INFO"
    assert Settings(CHIMERA_LOG_LEVEL="debug").log_level == "DEBUG"
    with pytest.raises(ValidationError):
        Settings(CHIMERA_LOG_LEVEL="loud")


def test_log_lines_start_with_an_iso_timestamp_and_the_level() -> None:
    record = logging.LogRecord("chimera", logging.WARNING, __file__, 1, "hello", None, None)
    line = TimestampFormatter(FORMAT).format(record)
    assert re.fullmatch(
        r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}[+-]\d{2}:\d{2} WARNING chimera: hello", line
    )


def test_production_banner_names_no_graphiql_and_no_token(
    capsys: pytest.CaptureFixture[str],
) -> None:
    production = Settings(CHIMERA_ENV="production", CHIMERA_AUTH_SECRET=STRONG)
    print_banner(production, "http://0.0.0.0:8000/graphql", None)
    printed = capsys.readouterr().out
    assert printed.startswith(
        "Chimera dashboard: http://0.0.0.0:8000/\nChimera GraphQL: http://0.0.0.0:8000/graphql\n"
    )
    assert "GraphiQL" not in printed and "TOKEN" not in printed
