"""A name that would display as other text than it is, through a bidirectional override or
by being only invisible characters, is BAD_USER_INPUT from the API and writes nothing."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import Table, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.stores.postgres.tables import agent, audit_log, outbox
from tests.support import TenantClient, error_codes

CREATE_AGENT = """mutation ($name: String!) {
  createAgent(input: {name: $name, persona: ""}) { agent { id name } } }"""

SPOOFING_NAMES = {
    "right-to-left-override": "invoice\u202efdp.exe",
    "isolate": "admin\u2066 (trusted)\u2069",
    "only-zero-width-spaces": "\u200b\u200b",
    "zero-width-and-spaces": " \u200b \ufeff ",
}


async def counts(engine: AsyncEngine, tenant_id: uuid.UUID) -> dict[str, int]:
    tables: list[Table] = [agent, audit_log, outbox]
    out: dict[str, int] = {}
    async with engine.connect() as conn:
        for table in tables:
            query = select(func.count()).select_from(table).where(table.c.tenant_id == tenant_id)
            out[table.name] = int((await conn.execute(query)).scalar_one())
    return out


@pytest.mark.parametrize("case", list(SPOOFING_NAMES))
async def test_creating_an_agent_with_a_spoofing_name_is_bad_user_input_and_creates_nothing(
    tenant: TenantClient, engine: AsyncEngine, case: str
) -> None:
    before = await counts(engine, tenant.id)
    body = await tenant.gql(CREATE_AGENT, {"name": SPOOFING_NAMES[case]})
    assert error_codes(body) == ["BAD_USER_INPUT"], body
    assert body["data"] == {"createAgent": None}
    assert "'name'" in json.dumps(body["errors"][0]), body
    assert await counts(engine, tenant.id) == before


async def test_an_agent_named_with_an_emoji_sequence_or_a_right_to_left_script_is_created(
    tenant: TenantClient,
) -> None:
    for name in ("Team \U0001f469\u200d\U0001f4bb", "فريق المبيعات", "צוות"):
        created = await tenant.data(CREATE_AGENT, {"name": name})
        assert created["createAgent"]["agent"]["name"] == name
