"""DateTime inputs at the edges of time are refused, and rows stored before that still work.

asyncpg writes ``datetime.min`` and ``datetime.max`` as PostgreSQL's -infinity and infinity
and reads them back as naive datetimes: a campaign given "0001-01-01T00:00:00Z" came back
without an offset, and any later update of it failed comparing its dates. Every DateTime
input now refuses moments outside 1900 to 9000 in UTC (app/scalars.py), and a row already
holding an infinity can still be read and changed.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.auth import Role
from app.ids import decode_id
from app.stores.postgres.tables import audit_log, campaign, outbox
from tests.support import TenantClient, error_codes

RANGE = "from 1900-01-01T00:00:00Z up to, not including, 9000-01-01T00:00:00Z"
EARLY = ["0001-01-01T00:00:00Z", "0001-01-01T00:00:00.000001Z", "1899-12-31T23:59:59Z"]
LATE = ["9999-12-31T23:59:59.999999Z", "9000-01-01T00:00:00Z", "8999-12-31T23:00:00-14:00"]

CREATE = """mutation($s: DateTime, $e: DateTime) {
  createCampaign(input: {name: "Bounded", budget: "100", startsAt: $s, endsAt: $e}) {
    campaign { id name startsAt endsAt } } }"""
UPDATE = """mutation($id: ID!, $n: String, $s: DateTime, $e: DateTime) {
  updateCampaign(input: {id: $id, name: $n, startsAt: $s, endsAt: $e}) {
    campaign { id name startsAt endsAt } } }"""
UPDATE_NAME = """mutation($id: ID!, $n: String!) {
  updateCampaign(input: {id: $id, name: $n}) { campaign { id name startsAt endsAt } } }"""
READ = """query($id: ID!) { campaign(id: $id) { name startsAt endsAt
  history(first: 5) { edges { node { action } } } } }"""
AGENT = 'mutation { createAgent(input: {name: "Runner"}) { agent { id } } }'
ENQUEUE = """mutation($input: EnqueueTaskInput!) { enqueueTask(input: $input) {
  task { id notBefore } } }"""
AGENT_TASKS = "query($id: ID!) { agent(id: $id) { tasks { totalCount } } }"
AUDIT = """query($filter: AuditLogFilter) { auditLog(filter: $filter) { totalCount } }"""
TRANSACTIONS = """query($id: ID!, $filter: TransactionFilter) { campaign(id: $id) {
  transactions(filter: $filter) { totalCount } } }"""
METRICS = """query($id: ID!, $from: DateTime!, $to: DateTime!) { campaign(id: $id) {
  metrics(from: $from, to: $to, bucket: HOUR) { at } } }"""


async def stored(engine: AsyncEngine, tenant: TenantClient) -> dict[str, Any]:
    """The tenant's campaigns whole, and how many audit and outbox rows it has."""
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(campaign).where(campaign.c.tenant_id == tenant.id).order_by(campaign.c.id)
            )
        ).all()
        counts = {
            table.name: (
                await conn.execute(
                    select(func.count()).select_from(table).where(table.c.tenant_id == tenant.id)
                )
            ).scalar_one()
            for table in (audit_log, outbox)
        }
    return {"campaigns": [dict(r._mapping) for r in rows], **counts}


def refused_for_range(body: dict[str, Any]) -> None:
    """Refused as bad input, one error per moment out of range, each saying the range."""
    assert set(error_codes(body)) == {"BAD_USER_INPUT"}, body
    assert all(RANGE in error["message"] for error in body["errors"]), body
    assert body.get("data") is None, body


async def new_campaign(tenant: TenantClient) -> str:
    variables = {"s": "2030-01-01T00:00:00Z", "e": "2030-02-01T00:00:00Z"}
    campaign_id: str = (await tenant.data(CREATE, variables))["createCampaign"]["campaign"]["id"]
    return campaign_id


@pytest.mark.parametrize(
    "dates",
    [{"s": moment} for moment in EARLY]
    + [{"e": moment} for moment in LATE]
    + [{"s": "0001-01-01T00:00:00Z", "e": "0001-01-01T00:00:00.000001Z"}],
)
async def test_campaign_dates_outside_the_range_are_refused_and_nothing_is_stored(
    tenant: TenantClient, engine: AsyncEngine, dates: dict[str, str]
) -> None:
    campaign_id = await new_campaign(tenant)
    before = await stored(engine, tenant)
    refused_for_range(await tenant.gql(CREATE, dates))
    refused_for_range(await tenant.gql(UPDATE, {"id": campaign_id, **dates}))
    assert await stored(engine, tenant) == before


async def test_literal_dates_in_the_document_outside_the_range_are_refused_too(
    tenant: TenantClient, engine: AsyncEngine
) -> None:
    campaign_id = await new_campaign(tenant)
    before = await stored(engine, tenant)
    for starts, ends in [
        ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00.000001Z"),
        ("2030-01-01T00:00:00Z", "9999-12-31T23:59:59.999999Z"),
    ]:
        document = f"""mutation {{ updateCampaign(input: {{id: "{campaign_id}",
          startsAt: "{starts}", endsAt: "{ends}"}}) {{ campaign {{ startsAt endsAt }} }} }}"""
        refused_for_range(await tenant.gql(document))
    assert await stored(engine, tenant) == before


async def test_a_task_not_before_outside_the_range_is_refused_and_nothing_is_enqueued(
    tenant: TenantClient,
) -> None:
    agent_id = (await tenant.data(AGENT))["createAgent"]["agent"]["id"]
    for moment in (*EARLY, *LATE):
        task_input = {
            "agentId": agent_id,
            "kind": "post",
            "idempotencyKey": uuid.uuid4().hex,
            "notBefore": moment,
        }
        refused_for_range(await tenant.gql(ENQUEUE, {"input": task_input}))
    tasks = await tenant.data(AGENT_TASKS, {"id": agent_id}, role=Role.ADMIN)
    assert tasks["agent"]["tasks"]["totalCount"] == 0


@pytest.mark.parametrize("moment", ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999Z"])
async def test_audit_ledger_and_metrics_windows_outside_the_range_are_refused(
    tenant: TenantClient, moment: str
) -> None:
    campaign_id = await new_campaign(tenant)
    for bound in ("from", "to"):
        refused_for_range(await tenant.gql(AUDIT, {"filter": {bound: moment}}, role=Role.ADMIN))
        refused_for_range(
            await tenant.gql(TRANSACTIONS, {"id": campaign_id, "filter": {bound: moment}})
        )
    at = datetime.fromisoformat(moment)
    window = (
        {"from": moment, "to": (at + timedelta(hours=1)).isoformat()}
        if at.year == 1
        else {"from": (at - timedelta(hours=1)).isoformat(), "to": moment}
    )
    refused_for_range(await tenant.gql(METRICS, {"id": campaign_id, **window}))


@pytest.mark.parametrize(
    ("starts", "ends"),
    [("'2030-01-01T00:00:00Z'", "'infinity'"), ("'-infinity'", "'2030-02-01T00:00:00Z'")],
)
async def test_a_campaign_stored_with_an_infinite_date_can_be_read_and_renamed(
    tenant: TenantClient, engine: AsyncEngine, starts: str, ends: str
) -> None:
    """Rows written before inputs were bounded: asyncpg reads their infinities as naive
    datetimes, which an update compared with the other, aware, date."""
    campaign_id = await new_campaign(tenant)
    async with engine.begin() as conn:
        await conn.execute(
            text(f"UPDATE campaign SET starts_at = {starts}, ends_at = {ends} WHERE id = :id"),
            {"id": decode_id(campaign_id, "Campaign")},
        )
    read = await tenant.data(READ, {"id": campaign_id})
    assert read["campaign"]["name"] == "Bounded"
    renamed = await tenant.gql(UPDATE_NAME, {"id": campaign_id, "n": "Renamed"})
    assert not renamed.get("errors"), renamed
    assert renamed["data"]["updateCampaign"]["campaign"]["name"] == "Renamed"
    # The finite date can still be moved, against the infinite one.
    moved = {"s": "2030-01-02T00:00:00Z"} if ends == "'infinity'" else {"e": "2030-03-01T00:00:00Z"}
    assert not (await tenant.gql(UPDATE, {"id": campaign_id, **moved})).get("errors")
    history = (await tenant.data(READ, {"id": campaign_id}))["campaign"]["history"]
    assert [e["node"]["action"] for e in history["edges"]][:2] == [
        "campaign.update",
        "campaign.update",
    ]
