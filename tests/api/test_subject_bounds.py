"""A principal's subject is the actor the audit trail records (varchar(200)): `chimera token`
refuses to mint one the trail could not hold, a token carrying one anyway is refused before
anything is written, and the audit log's actor and action filters refuse control characters
as every other string input does."""

from __future__ import annotations

import uuid
from typing import Any

import jwt
import pytest
from httpx import AsyncClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.auth import ALGORITHM, SUBJECT_MAX, Role
from app.stores.postgres.tables import agent, audit_log
from tests.api import test_provider_tokens as identity_provider
from tests.api.test_provider_tokens import Provider
from tests.processes import chimera_env, run_chimera
from tests.support import SECRET, TenantClient, error_codes

# The identity provider's fixtures: its key set served on loopback, and an app that trusts it.
provider = identity_provider.provider
provider_client = identity_provider.client

CREATE_AGENT = 'mutation { createAgent(input: {name: "Subject bound"}) { agent { id } } }'
LOG = """query($filter: AuditLogFilter) {
  auditLog(first: 10, filter: $filter) { totalCount edges { node { actor action } } } }"""
TTL_RULE = "--ttl must be a whole number of seconds from 60 to 31622400 (366 days)"


@pytest.fixture
def cli_tenant(database_url: str) -> tuple[dict[str, str], str]:
    """A `chimera` environment on the session's database, and a tenant in it: a token the
    command does not refuse is minted, so a refusal that went missing shows as exit 0."""
    env = chimera_env(DATABASE_URL=database_url, CHIMERA_AUTH_SECRET=SECRET)
    slug = f"cli-{uuid.uuid4().hex[:12]}"
    created = run_chimera("tenant", "create", slug, env=env)
    assert created.returncode == 0, created.stderr
    return env, slug


@pytest.mark.parametrize(
    ("subject", "says"),
    [
        ("x" * (SUBJECT_MAX + 1), "--subject must be at most 200 characters"),
        ("", "--subject must not be empty"),
        ("   ", "--subject must not be empty"),
        ("evil\x1b[31mred", "--subject must not contain control characters"),
        ("line\nbreak", "--subject must not contain control characters"),
        (
            "admin\u202egnp.exe",
            "--subject must not contain bidirectional override or isolate characters",
        ),
    ],
)
def test_token_refuses_a_subject_the_audit_trail_cannot_hold_in_one_line_exit_2(
    cli_tenant: tuple[dict[str, str], str], subject: str, says: str
) -> None:
    env, slug = cli_tenant
    refused = run_chimera(
        "token", "--tenant", slug, "--role", "editor", "--subject", subject, env=env
    )
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert refused.stdout == ""
    assert refused.stderr == f"chimera: error: {says}\n"


@pytest.mark.parametrize("ttl", ["0", "-5", "59", "31622401", "999999999999", "1.5", "week"])
def test_token_refuses_a_ttl_that_is_not_a_sane_lifetime_in_one_line_exit_2(
    cli_tenant: tuple[dict[str, str], str], ttl: str
) -> None:
    env, slug = cli_tenant
    refused = run_chimera("token", "--tenant", slug, f"--ttl={ttl}", env=env)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert refused.stdout == ""
    assert refused.stderr == f"chimera: error: {TTL_RULE}, not {ttl!r}\n"


def test_token_mints_for_the_longest_subject_and_lifetime_it_allows(
    cli_tenant: tuple[dict[str, str], str],
) -> None:
    env, slug = cli_tenant
    subject = "s" * SUBJECT_MAX
    minted = run_chimera(
        "token", "--tenant", slug, "--subject", subject, "--ttl", "31622400", env=env
    )
    assert minted.returncode == 0, minted.stderr
    claims: dict[str, Any] = jwt.decode(minted.stdout.strip(), SECRET, algorithms=[ALGORITHM])
    assert claims["sub"] == subject
    assert claims["exp"] - claims["iat"] == 31622400


async def _written(engine: AsyncEngine, tenant_id: uuid.UUID) -> tuple[int, int]:
    async with engine.connect() as conn:
        agents = await conn.scalar(
            select(func.count()).select_from(agent).where(agent.c.tenant_id == tenant_id)
        )
        entries = await conn.scalar(
            select(func.count()).select_from(audit_log).where(audit_log.c.tenant_id == tenant_id)
        )
    return int(agents or 0), int(entries or 0)


@pytest.mark.parametrize(
    ("subject", "says"),
    [
        ("x" * (SUBJECT_MAX + 1), "must be at most 200 characters"),
        ("bell\x07", "must not contain control characters"),
        ("nul\x00", "must not contain control characters"),
    ],
)
async def test_a_token_whose_subject_the_audit_trail_cannot_hold_is_unauthenticated(
    tenant: TenantClient, engine: AsyncEngine, subject: str, says: str
) -> None:
    token = tenant.token_as(subject)
    before = await _written(engine, tenant.id)
    body = await tenant.gql(CREATE_AGENT, token=token)
    assert error_codes(body) == ["UNAUTHENTICATED"], body
    assert body["errors"][0]["message"] == f"The bearer token's subject (sub) {says}"
    assert await _written(engine, tenant.id) == before
    # Refused again, not remembered as verified.
    again = await tenant.gql(CREATE_AGENT, token=token)
    assert error_codes(again) == ["UNAUTHENTICATED"], again
    assert await _written(engine, tenant.id) == before


async def test_an_identity_providers_token_whose_subject_cannot_be_audited_is_refused(
    provider_client: tuple[AsyncClient, TenantClient],
    provider: Provider,
) -> None:
    _, tenant = provider_client
    for subject, says in [
        ("x" * (SUBJECT_MAX + 1), "must be at most 200 characters"),
        ("tab\there", "must not contain control characters"),
    ]:
        token = provider.token("rsa-1", tenant.id, tenant.slug, sub=subject)
        body = await tenant.gql(CREATE_AGENT, token=token)
        assert error_codes(body) == ["UNAUTHENTICATED"], body
        assert body["errors"][0]["message"] == f"The bearer token's subject (sub) {says}"
    longest = provider.token("ec-1", tenant.id, tenant.slug, sub="z" * SUBJECT_MAX)
    assert "errors" not in await tenant.gql(CREATE_AGENT, token=longest)


async def test_a_token_with_the_longest_subject_is_audited_as_its_actor(
    tenant: TenantClient, engine: AsyncEngine
) -> None:
    subject = "y" * SUBJECT_MAX
    token = tenant.token_as(subject)
    body = await tenant.gql(CREATE_AGENT, token=token)
    assert "errors" not in body, body
    log = await tenant.data(LOG, {"filter": {"actor": subject}}, role=Role.ADMIN)
    assert [e["node"] for e in log["auditLog"]["edges"]] == [
        {"actor": subject, "action": "agent.create"}
    ]


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        ({"actor": "a\u0000b"}, "'actor' must not contain control characters"),
        ({"actor": "a\x1bb"}, "'actor' must not contain control characters"),
        ({"actions": ["a\u0000b"]}, "'actions' must not contain control characters"),
        ({"actions": ["agent.create", "x\ny"]}, "'actions' must not contain control characters"),
    ],
)
async def test_control_characters_in_the_audit_logs_actor_or_actions_are_bad_user_input(
    tenant: TenantClient, bad: dict[str, Any], says: str
) -> None:
    body = await tenant.gql(LOG, {"filter": bad}, role=Role.ADMIN)
    assert error_codes(body) == ["BAD_USER_INPUT"], body
    assert body["errors"][0]["message"] == says
    assert body["errors"][0]["extensions"]["argument"] == "filter"
