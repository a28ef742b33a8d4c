"""Agent memories as GraphQL types."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

import strawberry

from app.ids import encode_id
from resolvers.info import Info
from resolvers.relay import Node

if TYPE_CHECKING:
    from resolvers.agents.types import Agent

AgentRef = Annotated["Agent", strawberry.lazy("resolvers.agents.types")]


@strawberry.type(description="Something an agent remembers; searchable by meaning.")
class AgentMemory(Node):
    pk: strawberry.Private[UUID]
    agent_pk: strawberry.Private[UUID]
    text: str
    created_at: datetime

    @classmethod
    def from_row(cls, row: Any) -> AgentMemory:
        return cls(
            id=strawberry.ID(encode_id("AgentMemory", row.id)),
            pk=row.id,
            agent_pk=row.agent_id,
            text=row.text,
            created_at=row.created_at,
        )

    @strawberry.field
    async def agent(self, info: Info) -> AgentRef | None:
        from resolvers.agents.types import Agent

        row = await info.context.loaders.agent_by_id.load(self.agent_pk)
        return Agent.from_row(row) if row is not None else None


@strawberry.type(description="A memory and how close it is to the query.")
class MemoryHit:
    score: float | None = strawberry.field(
        description="Cosine similarity to the query; null when listed without a query."
    )
    memory: AgentMemory
