"""Creating and changing campaigns, their status and their agents.

Every change that touches a campaign emits a campaign event (the CampaignEventType names), so
the live-update relay has one source for everything a dashboard shows.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Row, delete, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.auth import Principal
from app.commands.changes import record_change
from app.commands.owned import owned_row
from app.errors import BadUserInput, BudgetExceeded, Conflict, NotFound
from app.money import DEFAULT_CURRENCY, clean_amount
from app.stores.postgres.tables import agent, campaign, campaign_agent, ledger_transaction

# Which status may follow which. ARCHIVED is final; COMPLETED can only be archived.
TRANSITIONS: dict[str, frozenset[str]] = {
    "DRAFT": frozenset({"ACTIVE", "ARCHIVED"}),
    "ACTIVE": frozenset({"PAUSED", "COMPLETED"}),
    "PAUSED": frozenset({"ACTIVE", "COMPLETED", "ARCHIVED"}),
    "COMPLETED": frozenset({"ARCHIVED"}),
    "ARCHIVED": frozenset(),
}

MAX_AGENTS_PER_ASSIGN = 100

KEEP: Any = object()  # "leave this field as it is", distinct from None ("clear it")


@dataclass(frozen=True)
class CampaignChanges:
    """Fields to change; ``KEEP`` means "leave as is" so that dates can be cleared with null."""

    name: str | None = None
    goal: str | None = None
    budget: Decimal | None = None
    starts_at: datetime | None = KEEP
    ends_at: datetime | None = KEEP
    currency: str | None = None

    def values(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in ("name", "goal", "budget", "currency"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        for key in ("starts_at", "ends_at"):
            if getattr(self, key) is not KEEP:
                out[key] = getattr(self, key)
        return out


def _instant(stored: datetime | None) -> datetime | None:
    """A stored campaign date as an aware instant, comparable with the dates a client sends.

    asyncpg reads PostgreSQL's -infinity and infinity as the naive ``datetime.min`` and
    ``datetime.max``. Rows written before DateTime inputs were bounded (app/scalars.py) may
    hold them, and comparing one with an aware date raised TypeError, so an update of any
    other field of such a campaign failed. As UTC they are the earliest and latest instants,
    which is what the infinities mean."""
    if stored is not None and stored.tzinfo is None:
        return stored.replace(tzinfo=UTC)
    return stored


def _article(word: str) -> str:
    """The indefinite article a status takes in a message: "an ACTIVE", "a DRAFT"."""
    return "an" if word[:1].upper() in "AEIOU" else "a"


async def _locked_campaign(
    conn: AsyncConnection, principal: Principal, pk: uuid.UUID, *, argument: str = "campaignId"
) -> Row[Any]:
    """The campaign, locked; NOT_FOUND names ``argument``, the input field that gave it
    (``id`` in updateCampaign's and setCampaignStatus's inputs, ``campaignId`` elsewhere)."""
    return await owned_row(
        conn, campaign, principal, pk, what="Campaign", argument=argument, lock=True
    )


async def create_campaign(
    engine: AsyncEngine,
    principal: Principal,
    *,
    name: str,
    goal: str,
    budget: Decimal,
    starts_at: datetime | None,
    ends_at: datetime | None,
    currency: str = DEFAULT_CURRENCY,
) -> Row[Any]:
    pk = uuid.uuid4()
    async with engine.begin() as conn:
        row = (
            await conn.execute(
                insert(campaign)
                .values(
                    id=pk,
                    tenant_id=principal.tenant_id,
                    name=name,
                    goal=goal,
                    budget=budget,
                    starts_at=starts_at,
                    ends_at=ends_at,
                    currency=currency,
                    status="DRAFT",
                )
                .returning(*campaign.c)
            )
        ).one()
        await record_change(
            conn,
            principal,
            action="campaign.create",
            entity_type="campaign",
            entity_id=pk,
            before=None,
            after=row,
            event_type="CREATED",
            payload={"campaignId": pk},
        )
    return row


async def update_campaign(
    engine: AsyncEngine, principal: Principal, pk: uuid.UUID, changes: CampaignChanges
) -> Row[Any]:
    async with engine.begin() as conn:
        before = await _locked_campaign(conn, principal, pk, argument="id")
        if before.status == "ARCHIVED":
            raise Conflict("An archived campaign cannot be changed")
        values = changes.values()
        if not values:
            return before
        starts = values.get("starts_at", _instant(before.starts_at))
        ends = values.get("ends_at", _instant(before.ends_at))
        if starts is not None and ends is not None and ends <= starts:
            raise BadUserInput("'endsAt' must be after 'startsAt'", field="endsAt")
        await _check_money(conn, principal, before, values)
        row = (
            await conn.execute(
                update(campaign)
                .where(campaign.c.tenant_id == principal.tenant_id, campaign.c.id == pk)
                .values(**values, updated_at=func.now())
                .returning(*campaign.c)
            )
        ).one()
        await record_change(
            conn,
            principal,
            action="campaign.update",
            entity_type="campaign",
            entity_id=pk,
            before=before,
            after=row,
            event_type="UPDATED",
            payload={"campaignId": pk, "fields": sorted(values)},
        )
    return row


async def _check_money(
    conn: AsyncConnection, principal: Principal, before: Row[Any], values: dict[str, Any]
) -> None:
    """A budget never drops below what was spent; the currency is fixed by the first
    transaction. The row is locked, so no spend lands between this check and the update."""
    if "budget" in values and values["budget"] < before.spent:
        raise BudgetExceeded(
            f"The budget cannot be lower than what was already spent ({before.spent})",
            field="budget",
            spent=str(before.spent),
        )
    if "currency" in values and values["currency"] != before.currency:
        used = (
            await conn.execute(
                select(ledger_transaction.c.id)
                .where(
                    ledger_transaction.c.tenant_id == principal.tenant_id,
                    ledger_transaction.c.campaign_id == before.id,
                )
                .limit(1)
            )
        ).first()
        if used is not None:
            raise Conflict(
                "The currency of a campaign with transactions cannot change", field="currency"
            )
    if "budget" in values or "currency" in values:  # a JPY budget has no cents
        clean_amount(
            values.get("budget", before.budget), values.get("currency", before.currency), "budget"
        )


async def set_campaign_status(
    engine: AsyncEngine, principal: Principal, pk: uuid.UUID, status: str
) -> Row[Any]:
    async with engine.begin() as conn:
        before = await _locked_campaign(conn, principal, pk, argument="id")
        if before.status == status:
            return before  # a retried request is not an error and emits nothing twice
        if status not in TRANSITIONS[before.status]:
            article = _article(before.status).title()
            raise Conflict(
                f"{article} {before.status} campaign cannot become {status}",
                allowed=sorted(TRANSITIONS[before.status]),
            )
        row = (
            await conn.execute(
                update(campaign)
                .where(campaign.c.tenant_id == principal.tenant_id, campaign.c.id == pk)
                .values(status=status, updated_at=func.now())
                .returning(*campaign.c)
            )
        ).one()
        await record_change(
            conn,
            principal,
            action="campaign.set_status",
            entity_type="campaign",
            entity_id=pk,
            before=before,
            after=row,
            event_type="STATUS_CHANGED",
            payload={"campaignId": pk, "from": before.status, "to": status},
        )
    return row


async def assign_agents(
    engine: AsyncEngine, principal: Principal, pk: uuid.UUID, agent_ids: list[uuid.UUID]
) -> Row[Any]:
    wanted = list(dict.fromkeys(agent_ids))
    if not wanted:
        raise BadUserInput("'agentIds' must not be empty", field="agentIds")
    if len(wanted) > MAX_AGENTS_PER_ASSIGN:
        raise BadUserInput(f"At most {MAX_AGENTS_PER_ASSIGN} agents per call", field="agentIds")
    async with engine.begin() as conn:
        row = await _locked_campaign(conn, principal, pk)
        if row.status in ("COMPLETED", "ARCHIVED"):
            raise Conflict(f"Agents cannot join {_article(row.status)} {row.status} campaign")
        agents = {
            a.id: a
            for a in await conn.execute(
                select(agent.c.id, agent.c.status).where(
                    agent.c.tenant_id == principal.tenant_id, agent.c.id.in_(wanted)
                )
            )
        }
        missing = [a for a in wanted if a not in agents]
        if missing:
            raise NotFound(
                f"{len(missing)} of the agents {'was' if len(missing) == 1 else 'were'} not found",
                argument="agentIds",
            )
        retired = [a for a in wanted if agents[a].status == "RETIRED"]
        if retired:
            raise Conflict("Retired agents cannot be assigned", argument="agentIds")
        added = await conn.execute(
            pg_insert(campaign_agent)
            .values(
                [
                    # clock_timestamp() advances per row, so one call's agents keep the order
                    # they were given in (now() would tie them and fall back to id order).
                    {
                        "tenant_id": principal.tenant_id,
                        "campaign_id": pk,
                        "agent_id": a,
                        "assigned_at": func.clock_timestamp(),
                    }
                    for a in wanted
                ]
            )
            .on_conflict_do_nothing()
            .returning(campaign_agent.c.agent_id)
        )
        for agent_id in [r.agent_id for r in added]:
            await record_change(
                conn,
                principal,
                action="campaign.assign_agent",
                entity_type="campaign_agent",
                entity_id=agent_id,
                before=None,
                after=None,
                event_type="AGENT_ASSIGNED",
                aggregate_type="campaign",
                aggregate_id=pk,
                payload={"campaignId": pk, "agentId": agent_id},
            )
    return row


async def unassign_agent(
    engine: AsyncEngine, principal: Principal, pk: uuid.UUID, agent_id: uuid.UUID
) -> Row[Any]:
    async with engine.begin() as conn:
        row = await _locked_campaign(conn, principal, pk)
        removed = (
            await conn.execute(
                delete(campaign_agent)
                .where(
                    campaign_agent.c.tenant_id == principal.tenant_id,
                    campaign_agent.c.campaign_id == pk,
                    campaign_agent.c.agent_id == agent_id,
                )
                .returning(campaign_agent.c.agent_id)
            )
        ).first()
        if removed is None:
            raise NotFound("That agent is not assigned to this campaign", argument="agentId")
        await record_change(
            conn,
            principal,
            action="campaign.unassign_agent",
            entity_type="campaign_agent",
            entity_id=agent_id,
            before=None,
            after=None,
            event_type="AGENT_UNASSIGNED",
            aggregate_type="campaign",
            aggregate_id=pk,
            payload={"campaignId": pk, "agentId": agent_id},
        )
    return row
