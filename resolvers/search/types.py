"""Search results: any searchable object with its score."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import strawberry

from app.cost.directives import CostStore, Store
from app.stores.vectors.port import VectorKind
from resolvers.agents.types import Agent
from resolvers.campaigns.types import Campaign
from resolvers.media.types import MediaAsset
from resolvers.memories.types import AgentMemory


@strawberry.enum
class SearchType(Enum):
    CAMPAIGN = VectorKind.CAMPAIGN.value
    AGENT = VectorKind.AGENT.value
    MEDIA = VectorKind.MEDIA.value
    MEMORY = VectorKind.MEMORY.value


SearchResult = Annotated[
    Campaign | Agent | MediaAsset | AgentMemory,
    strawberry.union("SearchResult", directives=[Store(name=CostStore.POSTGRES)]),
]


@strawberry.type(description="One semantic search hit; higher scores are closer.")
class SearchHit:
    score: float
    node: SearchResult
