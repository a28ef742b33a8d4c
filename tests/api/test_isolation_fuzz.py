"""Another tenant's ids, sent to every field that takes an id: never a row of theirs in the
answer, never a change to their data.

tests/api/test_isolation.py pins the paths known to matter; this walks all of them, from
schema.graphql as tests/api/test_schema_fuzz.py does. The attacker is an admin of a tenant
of their own, holding every id of the victim's (campaigns, agent, transactions, task, media
asset, page cursors), and sends them, well formed, in every id argument and input field
of every query and mutation, asking for every id the answer can hold. No answer may carry
one of the victim's ids, and when all fields have been tried the victim's rows, in every
table a write could touch, are what they were.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio
from graphql import (
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLUnionType,
    get_named_type,
)
from httpx import AsyncClient
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from app.auth import Role
from app.ids import decode_any
from app.stores.postgres.tables import (
    agent,
    agent_memory,
    api_key,
    audit_log,
    campaign,
    campaign_agent,
    ledger_transaction,
    media_asset,
    outbox,
)
from tests.api.schema_fuzzing import (
    EXPECTED_CODES,
    FUZZ,
    TARGETS,
    Fuzzed,
    Target,
    Values,
    document,
    seed_tenant,
)
from tests.support import error_codes

TABLES = (
    agent,
    campaign,
    campaign_agent,
    media_asset,
    ledger_transaction,
    agent_memory,
    api_key,
    audit_log,
    outbox,
)


def _takes_ids(kind: GraphQLInputType, seen: frozenset[str] = frozenset()) -> bool:
    named = get_named_type(kind)
    if isinstance(named, GraphQLScalarType):
        return named.name in ("ID", "String")  # String: a cursor is another tenant's too
    if isinstance(named, GraphQLInputObjectType) and named.name not in seen:
        return any(_takes_ids(f.type, seen | {named.name}) for f in named.fields.values())
    return False


ID_TARGETS = [
    target for target in TARGETS if any(_takes_ids(arg.type) for arg in target.field.args.values())
]


def selection(kind: GraphQLNamedType, depth: int = 0) -> str:
    """Every id the answer can hold, three levels down, through the fields that take no
    arguments (a connection's edges and nodes, a payload's object, an object's owner)."""
    if isinstance(kind, GraphQLInterfaceType | GraphQLUnionType):
        return "{ __typename ... on Node { id } }"
    if not isinstance(kind, GraphQLObjectType):
        return ""
    parts = ["__typename"]
    for name, field in kind.fields.items():
        child = get_named_type(field.type)
        if name == "id" and isinstance(child, GraphQLScalarType):
            parts.append("id")
        elif depth < 3 and not field.args and (inner := selection(child, depth + 1)):
            parts.append(f"{name} {inner}")
    return "{ " + " ".join(parts) + " }"


@dataclass
class Victim:
    tenant_id: uuid.UUID
    ids: dict[str, list[str]]
    secrets: list[str]  # every id of theirs, as global ids and as bare UUIDs
    rows: dict[str, list[str]]


async def _rows(engine: AsyncEngine, tenant_id: uuid.UUID) -> dict[str, list[str]]:
    found = {}
    async with engine.connect() as conn:
        for table in TABLES:
            result = await conn.execute(select(table).where(table.c.tenant_id == tenant_id))
            found[table.name] = sorted(json.dumps(list(map(str, row))) for row in result)
    return found


@pytest_asyncio.fixture(scope="module")
async def attacker(app: Starlette, engine: AsyncEngine, http: AsyncClient) -> Fuzzed:
    return await seed_tenant(app, engine, http)


@pytest_asyncio.fixture(scope="module")
async def victim(app: Starlette, engine: AsyncEngine, http: AsyncClient) -> Victim:
    made = await seed_tenant(app, engine, http)
    global_ids = [i for kind, ids in made.real_ids.items() if kind != "cursor" for i in ids]
    bare = [str(decode_any(global_id)[1]) for global_id in global_ids]
    return Victim(
        made.tenant.id,
        made.real_ids,
        [*global_ids, *bare, str(made.tenant.id)],
        await _rows(engine, made.tenant.id),
    )


@pytest.mark.parametrize("target", ID_TARGETS, ids=str)
@FUZZ
@given(data=st.data())
async def test_another_tenants_ids_reach_none_of_their_rows(
    attacker: Fuzzed,
    victim: Victim,
    target: Target,
    data: st.DataObject,
) -> None:
    values = Values(victim.ids, hostile=data.draw(st.sampled_from([0, 0, 10])))
    variables = {
        f"v{i}": data.draw(values.of(arg.type, (name, target.name)), label=name)
        for i, (name, arg) in enumerate(target.field.args.items())
    }
    token = attacker.tenant.token(Role.ADMIN)
    response = await attacker.tenant.http.post(
        "/graphql",
        content=json.dumps({"query": document(target, selection), "variables": variables}),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    assert response.status_code < 500, response.text[:2000]
    body: dict[str, Any] = response.json()
    assert not set(error_codes(body)) - EXPECTED_CODES, body
    leaked = [secret for secret in victim.secrets if secret in json.dumps(body.get("data"))]
    assert not leaked, (document(target, selection), variables, body)


async def test_the_victims_rows_are_as_they_were(engine: AsyncEngine, victim: Victim) -> None:
    """Runs after the attacks above (pytest keeps a module's order)."""
    assert await _rows(engine, victim.tenant_id) == victim.rows
