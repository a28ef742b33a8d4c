"""Agent memories: appended text an agent can later recall by meaning."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Row, insert
from sqlalchemy.ext.asyncio import AsyncEngine

from app.auth import Principal
from app.commands.changes import record_change
from app.commands.owned import owned_row
from app.stores.postgres.tables import agent, agent_memory


async def add_memory(
    engine: AsyncEngine, principal: Principal, agent_id: uuid.UUID, text: str
) -> Row[Any]:
    memory_id = uuid.uuid4()
    async with engine.begin() as conn:
        await owned_row(conn, agent, principal, agent_id, what="Agent", argument="agentId")
        row = (
            await conn.execute(
                insert(agent_memory)
                .values(id=memory_id, tenant_id=principal.tenant_id, agent_id=agent_id, text=text)
                .returning(*agent_memory.c)
            )
        ).one()
        # The event is what gets the memory indexed; it names the row, never carries the text.
        await record_change(
            conn,
            principal,
            action="agent_memory.add",
            entity_type="agent_memory",
            entity_id=memory_id,
            before=None,
            after=row,
            event_type="MEMORY_ADDED",
            payload={"memoryId": memory_id, "agentId": agent_id},
        )
    return row
