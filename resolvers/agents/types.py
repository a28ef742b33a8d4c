"""GraphQL types of the agents domain."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

import strawberry

from app.cost.directives import (
    EMBEDDED_TEXT,
    POSTGRES,
    REDIS,
    Cost,
    CostStore,
    ListSize,
    Store,
    connection,
    vector_search,
)
from app.ids import encode_id
from app.pagination import PageArgs
from app.stores.vectors.port import VectorKind
from app.validation import clean_search_text
from loaders.vectors.search import SearchKey
from resolvers.batching import batched, one, settle
from resolvers.columns import Row, column, row_of
from resolvers.info import Info
from resolvers.listing import edge_args, edge_cursor
from resolvers.relay import Connection, Node, OrderDirection, build_connection
from resolvers.search.limits import MAX_LIMIT

if TYPE_CHECKING:
    from resolvers.agents.stats import AgentStats
    from resolvers.audit.types import AuditEntry
    from resolvers.campaigns.types import Campaign
    from resolvers.ledger.types import Money
    from resolvers.memories.types import MemoryHit
    from resolvers.sessions.types import AgentSession
    from resolvers.tasks.types import Task, TaskStatus

CampaignRef = Annotated["Campaign", strawberry.lazy("resolvers.campaigns.types")]
MemoryHitRef = Annotated["MemoryHit", strawberry.lazy("resolvers.memories.types")]
AuditEntryRef = Annotated["AuditEntry", strawberry.lazy("resolvers.audit.types")]
AgentStatsRef = Annotated["AgentStats", strawberry.lazy("resolvers.agents.stats")]
MoneyRef = Annotated["Money", strawberry.lazy("resolvers.ledger.types")]
TaskRef = Annotated["Task", strawberry.lazy("resolvers.tasks.types")]
AgentSessionRef = Annotated["AgentSession", strawberry.lazy("resolvers.sessions.types")]
TaskStatusRef = Annotated["TaskStatus", strawberry.lazy("resolvers.tasks.types")]


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


async def active_tasks_many(agents: Sequence[Agent], info: Info) -> list[Any]:
    load = info.context.loaders.task_counts_by_agent.load
    counts = await settle([load(agent.pk) for agent in agents])
    return [c if isinstance(c, Exception) else c.running for c in counts]


async def queued_tasks_many(agents: Sequence[Agent], info: Info) -> list[Any]:
    load = info.context.loaders.task_counts_by_agent.load
    counts = await settle([load(agent.pk) for agent in agents])
    return [c if isinstance(c, Exception) else c.queued for c in counts]


async def sessions_many(agents: Sequence[Agent], info: Info) -> list[Any]:
    from resolvers.sessions.types import sessions_many as many

    return await many(agents, info)


async def spent_many(agents: Sequence[Agent], info: Info) -> list[Any]:
    from resolvers.ledger.types import spent_by_agents

    return await spent_by_agents([agent.pk for agent in agents], info)


async def memories_many(
    agents: Sequence[Agent], info: Info, query: str | None = None, limit: int | None = 10
) -> list[Any]:
    """Every agent of the page in one tick: one statement for the latest memories, or one
    embedding call and one index batch for a query."""
    from resolvers.memories.types import AgentMemory, MemoryHit
    from resolvers.search.queries import check_limit, hydrate_many

    loaders = info.context.loaders
    first = check_limit(limit)
    if query is None:
        load_recent = loaders.recent_memories_by_agent.load
        pages = await settle([load_recent((a.pk, PageArgs(first=first))) for a in agents])
        return [
            page
            if isinstance(page, Exception)
            else [MemoryHit(score=None, memory=AgentMemory.from_row(r)) for r in page.rows]
            for page in pages
        ]
    text = clean_search_text(query)
    load_hits = loaders.hits_by_query.load
    hits = await settle(
        [
            load_hits(SearchKey((VectorKind.MEMORY,), first, text=text, owner_id=a.pk))
            for a in agents
        ]
    )
    return [
        found
        if isinstance(found, Exception)
        else [
            MemoryHit(score=score, memory=node)
            for score, node in found
            if isinstance(node, AgentMemory)
        ]
        for found in await hydrate_many(loaders, hits)
    ]


def agent_id(pk: UUID) -> str:
    return encode_id("Agent", pk)


@strawberry.type(
    description="An AI agent that carries out campaign work for a tenant.",
    directives=[Store(name=CostStore.POSTGRES)],
)
class Agent(Node):
    __slots__ = ("row",)
    row: strawberry.Private[Row]
    id: strawberry.ID = column("id", agent_id)
    name: str = column("name")
    persona: str = column("persona")
    status: AgentStatus = column("status", AgentStatus)
    created_at: datetime = column("created_at")
    updated_at: datetime = column("updated_at")

    @classmethod
    def from_row(cls, row: Any) -> Agent:
        return cls(row=row_of(row))

    @property
    def pk(self) -> UUID:
        pk: UUID = self.row["id"]
        return pk

    @strawberry.field(
        description="Tasks RUNNING under a lease now, from Redis; null (with an error) while "
        "Redis is unavailable.",
        directives=[Cost(weight=1), REDIS],
        metadata=batched(active_tasks_many),
    )
    async def active_tasks(self, info: Info) -> int | None:
        count: int | None = await one(active_tasks_many, self, info)
        return count

    @strawberry.field(
        description="Tasks QUEUED now (ready, or waiting for their time), from Redis; null "
        "(with an error) while Redis is unavailable.",
        directives=[Cost(weight=1), REDIS],
        metadata=batched(queued_tasks_many),
    )
    async def queued_tasks(self, info: Info) -> int | None:
        count: int | None = await one(queued_tasks_many, self, info)
        return count

    @strawberry.field(
        description="The agent's working state (Redis), or null if none or expired.",
        directives=[REDIS],
        metadata=batched(sessions_many),
    )
    async def session(self, info: Info) -> AgentSessionRef | None:
        found: AgentSessionRef | None = await one(sessions_many, self, info)
        return found

    @strawberry.field(
        description="This agent's tasks, newest first, of one status or all.",
        directives=connection(store=CostStore.REDIS),
    )
    def tasks(
        self,
        info: Info,
        status: TaskStatusRef | None = None,
        first: int | None = 20,
        after: str | None = None,
    ) -> Connection[TaskRef]:
        from resolvers.tasks.types import status_index, task_list

        return task_list(info, status_index("agent", self.pk, status), first, after)

    @strawberry.field(
        description="What this agent's transactions moved, one amount per currency (an agent "
        "may work on campaigns in several), by currency code.",
        directives=[ListSize(assumed_size=10)],
        metadata=batched(spent_many),
    )
    async def spent(self, info: Info) -> list[MoneyRef]:
        totals: list[MoneyRef] = await one(spent_many, self, info)
        return totals

    @strawberry.field(
        description="With a query: the memories closest to it, best first. Without: the "
        "latest memories, newest first (score null).",
        directives=vector_search(call=10, limit=MAX_LIMIT),
        metadata=batched(memories_many),
    )
    async def memories(
        self,
        info: Info,
        query: Annotated[
            str | None,
            strawberry.argument(directives=EMBEDDED_TEXT),
        ] = None,
        limit: int | None = 10,
    ) -> list[MemoryHitRef]:
        hits: list[MemoryHitRef] = await one(memories_many, self, info, query=query, limit=limit)
        return hits

    @strawberry.field(
        description="Workload, spend and memory, for dashboards.",
        directives=[Cost(weight=5), POSTGRES],
    )
    def stats(self) -> AgentStatsRef:
        from resolvers.agents.stats import AgentStats

        return AgentStats(agent_pk=self.pk)

    @strawberry.field(
        description="Audited changes of this agent, newest first.", directives=connection()
    )
    def history(
        self, info: Info, first: int | None = 20, after: str | None = None
    ) -> Connection[AuditEntryRef]:
        from resolvers.audit.queries import history

        return history(info, "agent", self.pk, first, after)

    @strawberry.field(
        description="Campaigns this agent is assigned to, in assignment order.",
        directives=connection(),
    )
    def campaigns(
        self, info: Info, first: int | None = 20, after: str | None = None
    ) -> Connection[CampaignRef]:
        from resolvers.campaigns.types import Campaign

        loaders = info.context.loaders
        key = (self.pk, edge_args(first, after))
        return build_connection(
            loaders.campaigns_by_agent,
            key,
            Campaign.from_row,
            edge_cursor,
            loaders.campaign_count_by_agent,
            self.pk,
        )
