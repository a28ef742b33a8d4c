"""Configuration parsing and bearer tokens."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from app import auth
from app.auth import Role, auth_secret, bearer_token, decode_token, mint_token
from app.errors import Unauthenticated
from app.settings import Environment, Settings


def test_database_urls_are_normalised_to_asyncpg() -> None:
    for given in ("postgres://u@h/db", "postgresql://u@h/db"):
        assert Settings(DATABASE_URL=given).database_url == "postgresql+asyncpg://u@h/db"
    assert Settings(DATABASE_URL="").database_url is None


def test_read_replica_urls_are_a_comma_separated_list_of_database_urls() -> None:
    settings = Settings(DATABASE_READ_URLS="postgres://u@r1/db, postgresql://u@r2:5433/db,")
    assert settings.read_urls == [
        "postgresql+asyncpg://u@r1/db",
        "postgresql+asyncpg://u@r2:5433/db",
    ]
    assert Settings(DATABASE_READ_URLS="").read_urls == []
    assert Settings().read_urls == []
    with pytest.raises(ValueError, match="not a PostgreSQL URL"):
        Settings(DATABASE_READ_URLS="postgres://u@r1/db,mysql://u@r2/db")


def test_the_token_lifetime_setting_is_bounded_as_chimera_token_is() -> None:
    assert Settings(CHIMERA_TOKEN_TTL_SECONDS=str(auth.TOKEN_TTL_MAX_SECONDS)).token_ttl_seconds
    for wrong in ("59", str(auth.TOKEN_TTL_MAX_SECONDS + 1)):
        with pytest.raises(ValueError, match="CHIMERA_TOKEN_TTL_SECONDS"):
            Settings(CHIMERA_TOKEN_TTL_SECONDS=wrong)


def test_environment_is_read_from_chimera_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHIMERA_ENV", "production")
    assert Settings().env is Environment.PRODUCTION


def test_dev_secret_is_created_once_and_kept(tmp_path: Path) -> None:
    settings = Settings(CHIMERA_DATA_DIR=str(tmp_path))
    first = auth_secret(settings)
    assert auth_secret(settings) == first and len(first) == 64
    assert (tmp_path / "auth_secret").stat().st_mode & 0o077 == 0


def test_production_requires_a_configured_secret(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="CHIMERA_AUTH_SECRET"):
        auth_secret(Settings(CHIMERA_ENV="production", CHIMERA_DATA_DIR=str(tmp_path)))


def test_tokens_round_trip_and_reject_tampering_and_expiry() -> None:
    tenant = uuid.uuid4()
    token = mint_token(
        "s" * 32, tenant_id=tenant, tenant_slug="t1", role=Role.EDITOR, subject="me", ttl_seconds=60
    )
    principal = decode_token("s" * 32, token)
    assert (principal.tenant_id, principal.role, principal.subject) == (tenant, Role.EDITOR, "me")
    with pytest.raises(Unauthenticated, match="invalid"):
        decode_token("t" * 32, token)
    expired = mint_token(
        "s" * 32,
        tenant_id=tenant,
        tenant_slug="t1",
        role=Role.EDITOR,
        subject="me",
        ttl_seconds=-120,
    )
    with pytest.raises(Unauthenticated, match="expired"):
        decode_token("s" * 32, expired)


def test_roles_are_ordered() -> None:
    assert Role.ADMIN.allows(Role.EDITOR) and Role.EDITOR.allows(Role.VIEWER)
    assert not Role.VIEWER.allows(Role.EDITOR)


def test_authorization_header_must_be_bearer() -> None:
    assert bearer_token(None) is None
    assert bearer_token("Bearer abc") == "abc"
    with pytest.raises(Unauthenticated):
        bearer_token("Basic dXNlcg==")


def test_a_known_token_is_not_verified_again_but_still_expires(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = "s" * 32
    pk = uuid.uuid4()
    token = mint_token(
        secret, tenant_id=pk, tenant_slug="t", role=Role.VIEWER, subject="x", ttl_seconds=2
    )
    assert decode_token(secret, token).tenant_id == pk
    verified: list[str] = []
    original = auth._verify

    def counted(secret: str, token: str) -> tuple[auth.Principal, float]:
        verified.append(token)
        return original(secret, token)

    monkeypatch.setattr(auth, "_verify", counted)
    assert decode_token(secret, token).tenant_id == pk
    assert verified == []  # served from what the first call verified
    with pytest.raises(Unauthenticated):  # another secret verifies again, and fails
        decode_token("o" * 32, token)
    time.sleep(3)
    with pytest.raises(Unauthenticated, match="expired"):
        decode_token(secret, token)
    assert verified == [token, token]  # the other secret, then the lapsed entry


def test_an_empty_metrics_or_health_token_is_no_token() -> None:
    """Else a request sending ``Bearer `` with nothing after it would match it."""
    settings = Settings(metrics_token="", health_token="")
    assert settings.metrics_token is None and settings.health_token is None
