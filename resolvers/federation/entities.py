"""Query._entities and Query._service: what a federation gateway asks a subgraph.

A gateway that holds a ``Campaign`` reference from another subgraph (``{__typename:
"Campaign", id: "..."}``) asks for the rest of it here. Representations are resolved through
the caller's tenant-bound loaders, exactly as ``node`` resolves ids: one batch per entity
type whatever the number of representations, and an id of another tenant is simply absent
(null), never an error that would say it exists. A malformed representation refuses the
whole field with BAD_USER_INPUT before anything is loaded: a gateway never sends one, so it
is a client's mistake or a probe, and half an answer would hide it.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import strawberry
from strawberry.federation.schema import FederationAny

from app.cost.directives import ListSize
from app.errors import BadUserInput
from app.ids import decode_any
from resolvers.agents.types import Agent
from resolvers.campaigns.types import Campaign
from resolvers.info import Info
from resolvers.ledger.types import Transaction
from resolvers.media.types import MediaAsset
from resolvers.memories.types import AgentMemory
from resolvers.nodes import resolve_node
from resolvers.tasks.types import Task
from resolvers.tenants.types import Tenant

# Every entity is keyed by its global id: the one clients already hold, and that decodes
# to exactly one type, so a representation cannot name one type and fetch another.
ENTITY_TYPES: tuple[type, ...] = (
    Agent,
    AgentMemory,
    Campaign,
    MediaAsset,
    Task,
    Tenant,
    Transaction,
)
MAX_REPRESENTATIONS = 1000

Entity = Annotated[
    Agent | AgentMemory | Campaign | MediaAsset | Task | Tenant | Transaction,
    strawberry.union("_Entity"),
]
_NAMES = frozenset(t.__strawberry_definition__.name for t in ENTITY_TYPES)  # type: ignore[attr-defined]


@strawberry.type(name="_Service")
class FederationService:
    sdl: str


def _checked_id(index: int, representation: Any) -> str:
    """The global id a representation names, or BAD_USER_INPUT: it must be an object of an
    entity's ``__typename`` whose ``id`` is an id of that type."""
    where = f"representations[{index}]"
    if not isinstance(representation, dict):
        raise BadUserInput(f"{where} is not an object", argument="representations")
    type_name = representation.get("__typename")
    if type_name not in _NAMES:
        raise BadUserInput(
            f"{where} has __typename {type_name!r}; entities here: {', '.join(sorted(_NAMES))}",
            argument="representations",
        )
    global_id = representation.get("id")
    if not isinstance(global_id, str):
        raise BadUserInput(f"{where} has no string 'id'", argument="representations")
    try:
        decoded_type, _ = decode_any(global_id)
    except BadUserInput:
        raise BadUserInput(f"{where} has an invalid id", argument="representations") from None
    if decoded_type != type_name:
        raise BadUserInput(f"{where}: id is not a {type_name} id", argument="representations")
    return global_id


async def resolve_entities(info: Info, representations: list[Any]) -> list[object | None]:
    if len(representations) > MAX_REPRESENTATIONS:
        raise BadUserInput(
            f"At most {MAX_REPRESENTATIONS} representations per call", argument="representations"
        )
    ids = [_checked_id(i, r) for i, r in enumerate(representations)]  # all, before any load
    # As Query.nodes: every load is queued before the first batch runs, one batch per type.
    loaders = info.context.loaders
    return list(await asyncio.gather(*(resolve_node(loaders, i) for i in ids)))


@strawberry.type
class FederationQueries:
    @strawberry.field(
        name="_entities",
        description="Entities of the caller's tenant by their representations, in order; "
        "null where not found (federation: gateways call this).",
        directives=[
            ListSize(
                assumed_size=MAX_REPRESENTATIONS,
                slicing_arguments=["representations"],
                require_one_slicing_argument=False,
            )
        ],
    )
    async def entities(
        self, info: Info, representations: list[FederationAny]
    ) -> list[Entity | None]:
        return await resolve_entities(info, list(representations))  # type: ignore[return-value]

    @strawberry.field(
        name="_service", description="This subgraph's SDL (federation: gateways call this)."
    )
    def service(self, info: Info) -> FederationService:
        return FederationService(sdl=info.schema.federation_sdl)  # type: ignore[attr-defined]
