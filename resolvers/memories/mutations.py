"""addAgentMemory."""

from __future__ import annotations

import strawberry

from app.commands.memories import add_memory
from app.cost.directives import POSTGRES
from app.errors import BadUserInput
from app.ids import decode_id
from app.validation import clean_text
from resolvers.columns import row_of
from resolvers.info import Info
from resolvers.memories.types import AgentMemory
from resolvers.permissions import IsEditor


@strawberry.input
class AddAgentMemoryInput:
    agent_id: strawberry.ID
    text: str


@strawberry.type
class AddAgentMemoryPayload:
    memory: AgentMemory


@strawberry.type
class MemoryMutations:
    @strawberry.mutation(
        permission_classes=[IsEditor],
        directives=[POSTGRES],
        description="Remember something for an agent; searchable once indexed (moments later).",
    )
    async def add_agent_memory(
        self, info: Info, input: AddAgentMemoryInput
    ) -> AddAgentMemoryPayload | None:
        text = clean_text(input.text, "text")
        if not text:
            raise BadUserInput("'text' must not be empty", field="text")
        ctx = info.context
        row = await add_memory(
            ctx.stores.engine, ctx.require_principal(), decode_id(input.agent_id, "Agent"), text
        )
        ctx.loaders.memory_by_id.prime(row.id, row_of(row))
        return AddAgentMemoryPayload(memory=AgentMemory.from_row(row))
