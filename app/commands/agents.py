"""Creating and changing agents."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, func, insert, update
from sqlalchemy.ext.asyncio import AsyncEngine

from app.auth import Principal
from app.commands.changes import record_change
from app.commands.owned import owned_row
from app.stores.postgres.tables import agent


@dataclass(frozen=True)
class AgentChanges:
    name: str | None = None
    persona: str | None = None
    status: str | None = None

    def values(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if v is not None}


async def create_agent(
    engine: AsyncEngine, principal: Principal, *, name: str, persona: str, status: str
) -> Row[Any]:
    agent_id = uuid.uuid4()
    async with engine.begin() as conn:
        row = (
            await conn.execute(
                insert(agent)
                .values(
                    id=agent_id,
                    tenant_id=principal.tenant_id,
                    name=name,
                    persona=persona,
                    status=status,
                )
                .returning(*agent.c)
            )
        ).one()
        await record_change(
            conn,
            principal,
            action="agent.create",
            entity_type="agent",
            entity_id=agent_id,
            before=None,
            after=row,
            event_type="AGENT_CREATED",
            payload={"agentId": agent_id, "name": name, "status": status},
        )
    return row


async def update_agent(
    engine: AsyncEngine, principal: Principal, agent_id: uuid.UUID, changes: AgentChanges
) -> Row[Any]:
    async with engine.begin() as conn:
        before = await owned_row(
            conn, agent, principal, agent_id, what="Agent", argument="id", lock=True
        )
        values = changes.values()
        if not values:
            return before
        row = (
            await conn.execute(
                update(agent)
                .where(agent.c.tenant_id == principal.tenant_id, agent.c.id == agent_id)
                .values(**values, updated_at=func.now())
                .returning(*agent.c)
            )
        ).one()
        event = (
            "AGENT_STATUS_CHANGED"
            if "status" in values and before.status != row.status
            else "AGENT_UPDATED"
        )
        await record_change(
            conn,
            principal,
            action="agent.update",
            entity_type="agent",
            entity_id=agent_id,
            before=before,
            after=row,
            event_type=event,
            payload={"agentId": agent_id, "fields": sorted(values)},
        )
    return row
