"""Creating an API key is audited like revoking one: an ``api_key.create`` entry naming the
key by its global id, written with the key, and never holding the key or its hash."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.api_keys import ApiKeys, create_api_key, digest
from app.auth import Role
from app.errors import BadUserInput
from app.stores.postgres.tables import audit_log
from tests.support import TenantClient

KEYS = "{ apiKeys { edges { node { id prefix } } } }"
LOG = """query($filter: AuditLogFilter) { auditLog(filter: $filter) { totalCount edges { node {
  id actor action entityType entityId occurredAt changes { field before after } } } } }"""


async def test_a_new_api_key_is_audited_by_its_global_id_without_its_secret(
    engine: AsyncEngine, tenant: TenantClient
) -> None:
    created = await create_api_key(
        engine, tenant.id, name="etl", role=Role.EDITOR, created_by="operator:chimera-cli"
    )
    listed = (await tenant.data(KEYS, role=Role.ADMIN))["apiKeys"]["edges"][0]["node"]
    found = await tenant.data(LOG, {"filter": {"entityType": "api_key"}}, role=Role.ADMIN)
    assert found["auditLog"]["totalCount"] == 1
    entry = found["auditLog"]["edges"][0]["node"]
    assert {k: entry[k] for k in ("actor", "action", "entityType", "entityId")} == {
        "actor": "operator:chimera-cli",
        "action": "api_key.create",
        "entityType": "api_key",
        "entityId": listed["id"],  # as ApiKey.id shows it, not the bare UUID
    }
    assert entry["changes"] == [
        {"field": "name", "before": None, "after": "etl"},
        {"field": "prefix", "before": None, "after": created.prefix},
        {"field": "role", "before": None, "after": "editor"},
    ]
    assert listed["prefix"] == created.prefix
    shown = json.dumps(found)
    assert created.key not in shown
    assert created.key.removeprefix(created.prefix + "_") not in shown
    assert digest(created.key) not in shown


async def test_the_stored_create_entry_holds_neither_the_key_nor_its_hash(
    engine: AsyncEngine, tenant: TenantClient
) -> None:
    created = await create_api_key(
        engine, tenant.id, name="ci", role=Role.VIEWER, created_by="test"
    )
    async with engine.connect() as conn:
        rows = (
            await conn.execute(select(audit_log).where(audit_log.c.entity_id == created.id))
        ).all()
    assert [(row.action, row.actor, row.tenant_id) for row in rows] == [
        ("api_key.create", "test", tenant.id)
    ]
    stored = json.dumps([row._asdict() for row in rows], default=str)
    secret = created.key.removeprefix(created.prefix + "_")
    for hidden in (created.key, secret, digest(created.key)):
        assert hidden not in stored


async def test_an_api_key_name_is_held_to_the_rules_of_names(
    engine: AsyncEngine, tenant: TenantClient
) -> None:
    # At most 193 characters: "apikey:" and the name are the 200-character audit actor.
    for name in ("ci\u202eevil", "\u200b\u200b", "x" * 194, "   "):
        with pytest.raises(BadUserInput, match="'name'"):
            await create_api_key(engine, tenant.id, name=name, role=Role.EDITOR, created_by="t")
    longest = await create_api_key(
        engine, tenant.id, name="x" * 193, role=Role.EDITOR, created_by="t"
    )
    principal = await ApiKeys(engine, timeout=5).principal(longest.key)
    assert len(principal.subject) == 200
