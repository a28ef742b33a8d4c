"""Agent memories as GraphQL types."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

import strawberry

from app.cost.directives import CostStore, Store
from app.ids import encode_id
from resolvers.batching import batched, built, one, settle
from resolvers.columns import Row, column, row_of
from resolvers.info import Info
from resolvers.relay import Node

if TYPE_CHECKING:
    from resolvers.agents.types import Agent

AgentRef = Annotated["Agent", strawberry.lazy("resolvers.agents.types")]


async def agents_of_memories(memories: Sequence[AgentMemory], info: Info) -> list[Any]:
    from resolvers.agents.types import Agent

    load = info.context.loaders.agent_by_id.load
    return built(await settle([load(memory.agent_pk) for memory in memories]), Agent.from_row)


def agent_memory_id(pk: UUID) -> str:
    return encode_id("AgentMemory", pk)


@strawberry.type(
    description="Something an agent remembers; searchable by meaning.",
    directives=[Store(name=CostStore.POSTGRES)],
)
class AgentMemory(Node):
    __slots__ = ("row",)
    row: strawberry.Private[Row]
    id: strawberry.ID = column("id", agent_memory_id)
    text: str = column("text")
    created_at: datetime = column("created_at")

    @classmethod
    def from_row(cls, row: Any) -> AgentMemory:
        return cls(row=row_of(row))

    @property
    def pk(self) -> UUID:
        pk: UUID = self.row["id"]
        return pk

    @property
    def agent_pk(self) -> UUID:
        pk: UUID = self.row["agent_id"]
        return pk

    @strawberry.field(metadata=batched(agents_of_memories))
    async def agent(self, info: Info) -> AgentRef | None:
        agent: AgentRef | None = await one(agents_of_memories, self, info)
        return agent


@strawberry.type(description="A memory and how close it is to the query.")
class MemoryHit:
    score: float | None = strawberry.field(
        description="Cosine similarity to the query; null when listed without a query."
    )
    memory: AgentMemory
