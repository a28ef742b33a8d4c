"""Agent.stats: what an agent works on, spent and remembers. Each part is one statement for
every agent of a page, and costs nothing unless the query selects it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

import strawberry

from app.cost.directives import ListSize
from resolvers.batching import batched, one, settle
from resolvers.campaigns.stats import StatusCount
from resolvers.campaigns.types import CampaignStatus
from resolvers.info import Info
from resolvers.ledger.types import Money, spent_by_agents


async def by_status_many(stats: Sequence[AgentStats], info: Info) -> list[Any]:
    load = info.context.loaders.campaigns_by_status_by_agent.load
    return [
        found
        if isinstance(found, Exception)
        else [StatusCount(status=s, count=dict(found).get(s.value, 0)) for s in CampaignStatus]
        for found in await settle([load(s.agent_pk) for s in stats])
    ]


async def spent_many(stats: Sequence[AgentStats], info: Info) -> list[Any]:
    return await spent_by_agents([s.agent_pk for s in stats], info)


async def memories_many(stats: Sequence[AgentStats], info: Info) -> list[Any]:
    load = info.context.loaders.memory_count_by_agent.load
    return await settle([load(s.agent_pk) for s in stats])


@strawberry.type(description="An agent's workload, spend and memory, for dashboards.")
class AgentStats:
    agent_pk: strawberry.Private[UUID]

    @strawberry.field(
        description="The campaigns this agent is assigned to, counted by status.",
        directives=[ListSize(assumed_size=len(CampaignStatus))],
        metadata=batched(by_status_many),
    )
    async def campaigns_by_status(self, info: Info) -> list[StatusCount]:
        counts: list[StatusCount] = await one(by_status_many, self, info)
        return counts

    @strawberry.field(
        description="What this agent's transactions moved, per currency.",
        directives=[ListSize(assumed_size=10)],
        metadata=batched(spent_many),
    )
    async def spent(self, info: Info) -> list[Money]:
        totals: list[Money] = await one(spent_many, self, info)
        return totals

    @strawberry.field(description="How many memories it holds.", metadata=batched(memories_many))
    async def memories(self, info: Info) -> int:
        count: int = await one(memories_many, self, info)
        return count
