"""Query.agent and Query.agents."""

from __future__ import annotations

from functools import partial

import strawberry

from app.cost.directives import connection
from app.ids import decode_id
from resolvers.agents.types import Agent, AgentFilter, AgentOrder
from resolvers.info import Info
from resolvers.listing import list_cursor, list_query
from resolvers.relay import Connection, build_connection
from resolvers.tasks.types import check_agent_reach


@strawberry.type
class AgentQueries:
    @strawberry.field(description="One agent of the caller's tenant, or null.")
    async def agent(self, info: Info, id: strawberry.ID) -> Agent | None:
        pk = decode_id(id, "Agent")
        check_agent_reach(info, pk)
        row = await info.context.loaders.agent_by_id.load(pk)
        return Agent.from_row(row) if row is not None else None

    @strawberry.field(
        description="The caller's agents; `first` defaults to 20, at most 100.",
        directives=connection(),
    )
    async def agents(
        self,
        info: Info,
        first: int | None = 20,
        after: str | None = None,
        filter: AgentFilter | None = None,
        order_by: AgentOrder | None = None,
    ) -> Connection[Agent]:
        flt, order = filter or AgentFilter(), order_by or AgentOrder()
        # flt.status as given: null is no filter, [] matches no agent (resolvers/listing.py).
        query = list_query(first, after, flt.status, flt.search, order.field, order.direction)
        loaders = info.context.loaders
        return build_connection(
            loaders.agent_page,
            query,
            Agent.from_row,
            partial(list_cursor, query),
            loaders.agent_count,
            query.filter,
        )
