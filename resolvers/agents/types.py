"""GraphQL types of the agents domain."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

import strawberry

from app.ids import encode_id
from app.pagination import PageArgs
from app.stores.vectors.port import VectorKind
from app.validation import clean_search_text
from loaders.vectors.search import SearchKey
from resolvers.info import Info
from resolvers.listing import edge_args, edge_cursor
from resolvers.relay import Connection, Node, OrderDirection, build_connection

if TYPE_CHECKING:
    from resolvers.campaigns.types import Campaign
    from resolvers.memories.types import MemoryHit

CampaignRef = Annotated["Campaign", strawberry.lazy("resolvers.campaigns.types")]
MemoryHitRef = Annotated["MemoryHit", strawberry.lazy("resolvers.memories.types")]


@strawberry.enum
class AgentStatus(Enum):
    ACTIVE = "ACTIVE"
    PAUSED = "PAUSED"
    RETIRED = "RETIRED"


@strawberry.enum
class AgentOrderField(Enum):
    CREATED_AT = "CREATED_AT"
    UPDATED_AT = "UPDATED_AT"
    NAME = "NAME"


@strawberry.input
class AgentFilter:
    status: list[AgentStatus] | None = None
    search: str | None = strawberry.field(
        default=None, description="Case-insensitive substring of the name."
    )


@strawberry.input
class AgentOrder:
    field: AgentOrderField = AgentOrderField.CREATED_AT
    direction: OrderDirection = OrderDirection.ASC


@strawberry.type(description="An AI agent that carries out campaign work for a tenant.")
class Agent(Node):
    pk: strawberry.Private[UUID]
    name: str
    persona: str
    status: AgentStatus
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Any) -> Agent:
        return cls(
            id=strawberry.ID(encode_id("Agent", row.id)),
            pk=row.id,
            name=row.name,
            persona=row.persona,
            status=AgentStatus(row.status),
            created_at=row.created_at,
            updated_at=row.updated_at,
        )

    @strawberry.field(
        description="Tasks in progress, from Redis; null (with an error) while Redis is unavailable."
    )
    async def active_tasks(self, info: Info) -> int | None:
        count: int = await info.context.loaders.active_tasks_by_agent.load(self.pk)
        return count

    @strawberry.field(
        description="With a query: the memories closest to it, best first. Without: the "
        "latest memories, newest first (score null)."
    )
    async def memories(
        self, info: Info, query: str | None = None, limit: int | None = 10
    ) -> list[MemoryHitRef]:
        from resolvers.memories.types import AgentMemory, MemoryHit
        from resolvers.search.queries import check_limit, hydrate

        loaders = info.context.loaders
        first = check_limit(limit)
        if query is None:
            page = await loaders.recent_memories_by_agent.load((self.pk, PageArgs(first=first)))
            return [MemoryHit(score=None, memory=AgentMemory.from_row(r)) for r in page.rows]
        text = clean_search_text(query)
        # Every agent of the page searches in the same tick: one embedding call, one index batch.
        hits = await loaders.hits_by_query.load(
            SearchKey((VectorKind.MEMORY,), first, text=text, owner_id=self.pk)
        )
        return [
            MemoryHit(score=score, memory=node)
            for score, node in await hydrate(loaders, hits)
            if isinstance(node, AgentMemory)
        ]

    @strawberry.field(description="Campaigns this agent is assigned to, in assignment order.")
    async def campaigns(
        self, info: Info, first: int | None = 20, after: str | None = None
    ) -> Connection[CampaignRef]:
        from resolvers.campaigns.types import Campaign

        loaders = info.context.loaders
        key = (self.pk, edge_args(first, after))
        return build_connection(
            lambda: loaders.campaigns_by_agent.load(key),
            Campaign.from_row,
            edge_cursor,
            lambda: loaders.campaign_count_by_agent.load(self.pk),
        )
