"""Every audit entry names its entity by a global id, and the filter takes every entity type
an entry can carry: what the log shows is what it can be filtered by."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from app.api_keys import create_api_key
from app.auth import Role
from resolvers.audit.types import ENTITY_TYPES
from tests.support import TenantClient

KEYS = "{ apiKeys { edges { node { id } } } }"
REVOKE = "mutation($id: ID!) { revokeApiKey(input: {id: $id}) { apiKey { id } } }"
LOG = """query($filter: AuditLogFilter) { auditLog(filter: $filter) {
  totalCount edges { node { action entityType entityId changes { field } } } } }"""
DESCRIPTION = """{ __type(name: "AuditEntry") { fields { name description } } }"""


async def test_an_api_key_revocation_shows_the_keys_global_id_and_filters_by_it(
    engine: AsyncEngine, tenant: TenantClient
) -> None:
    await create_api_key(engine, tenant.id, name="ci", role=Role.EDITOR, created_by="test")
    key_id = (await tenant.data(KEYS, role=Role.ADMIN))["apiKeys"]["edges"][0]["node"]["id"]
    await tenant.data(REVOKE, {"id": key_id}, role=Role.ADMIN)
    expected = {
        "action": "api_key.revoke",
        "entityType": "api_key",
        "entityId": key_id,  # as ApiKey.id shows it, not the bare UUID
        "changes": [{"field": "revokedAt"}],
    }
    for given in ({"entityType": "api_key"}, {"entityId": key_id}):
        found = await tenant.data(LOG, {"filter": given}, role=Role.ADMIN)
        # Its creation, then its revocation: newest first.
        assert found["auditLog"]["totalCount"] == 2, given
        assert found["auditLog"]["edges"][0]["node"] == expected, given


async def test_the_entity_type_description_names_every_type_the_filter_takes(
    tenant: TenantClient,
) -> None:
    fields = (await tenant.data(DESCRIPTION))["__type"]["fields"]
    description = next(f["description"] for f in fields if f["name"] == "entityType")
    named = {word.strip(",.()") for word in description.split()}
    assert set(ENTITY_TYPES) <= named, description
    for entity_type in ENTITY_TYPES:
        body = await tenant.gql(LOG, {"filter": {"entityType": entity_type}}, role=Role.ADMIN)
        assert not body.get("errors"), (entity_type, body)
