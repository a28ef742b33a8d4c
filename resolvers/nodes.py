"""Query.node and Query.nodes: any object by its global id, through the same loaders."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

import strawberry

from app.cost.directives import ListSize
from app.errors import BadUserInput
from app.ids import decode_any
from loaders.registry import Loaders
from resolvers.agents.types import Agent
from resolvers.campaigns.types import Campaign
from resolvers.info import Info
from resolvers.ledger.types import Transaction
from resolvers.media.types import MediaAsset
from resolvers.memories.types import AgentMemory
from resolvers.relay import Node
from resolvers.tasks.types import Task
from resolvers.tenants.types import Tenant

MAX_NODES = 100

# Type name in the id -> how to load it and build the GraphQL object.
NODE_TYPES: dict[str, tuple[Callable[[Loaders, UUID], Awaitable[Any]], Callable[[Any], Node]]] = {
    "Agent": (lambda loaders, pk: loaders.agent_by_id.load(pk), Agent.from_row),
    "Campaign": (lambda loaders, pk: loaders.campaign_by_id.load(pk), Campaign.from_row),
    "Tenant": (lambda loaders, pk: loaders.tenant_by_id.load(pk), Tenant.from_row),
    "MediaAsset": (lambda loaders, pk: loaders.media_by_id.load(pk), MediaAsset.from_row),
    "AgentMemory": (lambda loaders, pk: loaders.memory_by_id.load(pk), AgentMemory.from_row),
    "Transaction": (lambda loaders, pk: loaders.transaction_by_id.load(pk), Transaction.from_row),
    "Task": (lambda loaders, pk: loaders.task_by_id.load(pk), Task.of),
}


async def resolve_node(loaders: Loaders, global_id: str) -> Node | None:
    type_name, pk = decode_any(global_id)
    if type_name not in NODE_TYPES:
        raise BadUserInput(f"Invalid id {global_id!r}", argument="id")
    load, build = NODE_TYPES[type_name]
    row = await load(loaders, pk)
    return build(row) if row is not None else None


@strawberry.type
class NodeQueries:
    @strawberry.field(description="Any object of the caller's tenant by its id, or null.")
    async def node(self, info: Info, id: strawberry.ID) -> Node | None:
        return await resolve_node(info.context.loaders, id)

    @strawberry.field(
        description="Objects by id, in the order asked; null where not found.",
        directives=[
            ListSize(
                assumed_size=MAX_NODES,
                slicing_arguments=["ids"],
                require_one_slicing_argument=False,
            )
        ],
    )
    async def nodes(self, info: Info, ids: list[strawberry.ID]) -> list[Node | None]:
        if len(ids) > MAX_NODES:
            raise BadUserInput(f"At most {MAX_NODES} ids per call", argument="ids")
        loaders = info.context.loaders
        for global_id in ids:  # reject bad ids before loading any
            decode_any(global_id)
        return list(await asyncio.gather(*(resolve_node(loaders, i) for i in ids)))
