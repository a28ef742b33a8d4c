"""createAgent and updateAgent."""

from __future__ import annotations

from typing import Any

import strawberry

from app.commands import agents as commands
from app.cost.directives import POSTGRES
from app.ids import decode_id
from app.validation import clean_name, clean_text
from resolvers.agents.types import Agent, AgentStatus
from resolvers.columns import row_of
from resolvers.info import Info
from resolvers.permissions import IsEditor


@strawberry.input
class CreateAgentInput:
    name: str
    persona: str = ""
    status: AgentStatus = AgentStatus.ACTIVE


@strawberry.input
class UpdateAgentInput:
    id: strawberry.ID
    name: str | None = None
    persona: str | None = None
    status: AgentStatus | None = None


@strawberry.type
class CreateAgentPayload:
    agent: Agent


@strawberry.type
class UpdateAgentPayload:
    agent: Agent


def _fresh(info: Info, row: Any) -> Agent:
    """Make the rest of this request see the row as written."""
    loader = info.context.loaders.agent_by_id
    loader.clear(row.id).prime(row.id, row_of(row))
    return Agent.from_row(row)


@strawberry.type
class AgentMutations:
    @strawberry.mutation(permission_classes=[IsEditor], directives=[POSTGRES])
    async def create_agent(self, info: Info, input: CreateAgentInput) -> CreateAgentPayload | None:
        ctx = info.context
        row = await commands.create_agent(
            ctx.stores.engine,
            ctx.require_principal(),
            name=clean_name(input.name, "name"),
            persona=clean_text(input.persona, "persona"),
            status=input.status.value,
        )
        return CreateAgentPayload(agent=_fresh(info, row))

    @strawberry.mutation(permission_classes=[IsEditor], directives=[POSTGRES])
    async def update_agent(self, info: Info, input: UpdateAgentInput) -> UpdateAgentPayload | None:
        ctx = info.context
        changes = commands.AgentChanges(
            name=clean_name(input.name, "name") if input.name is not None else None,
            persona=clean_text(input.persona, "persona") if input.persona is not None else None,
            status=input.status.value if input.status is not None else None,
        )
        row = await commands.update_agent(
            ctx.stores.engine, ctx.require_principal(), decode_id(input.id, "Agent"), changes
        )
        return UpdateAgentPayload(agent=_fresh(info, row))
