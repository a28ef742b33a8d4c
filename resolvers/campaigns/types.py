"""GraphQL types of the campaigns domain."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

import strawberry

from app.ids import encode_id
from app.pagination import encode_cursor
from loaders.postgres.media import MEDIA_ORDER
from resolvers.engagement.types import Engagement
from resolvers.info import Info
from resolvers.listing import edge_args, edge_cursor, time_args
from resolvers.relay import Connection, Node, OrderDirection, build_connection

if TYPE_CHECKING:
    from resolvers.agents.types import Agent
    from resolvers.media.types import MediaAsset

AgentRef = Annotated["Agent", strawberry.lazy("resolvers.agents.types")]
MediaRef = Annotated["MediaAsset", strawberry.lazy("resolvers.media.types")]


@strawberry.enum
class CampaignStatus(Enum):
    DRAFT = "DRAFT"
    ACTIVE = "ACTIVE"
    PAUSED = "PAUSED"
    COMPLETED = "COMPLETED"
    ARCHIVED = "ARCHIVED"


@strawberry.enum
class CampaignOrderField(Enum):
    CREATED_AT = "CREATED_AT"
    UPDATED_AT = "UPDATED_AT"
    NAME = "NAME"


@strawberry.input
class CampaignFilter:
    status: list[CampaignStatus] | None = None
    search: str | None = strawberry.field(
        default=None, description="Case-insensitive substring of the name."
    )


@strawberry.input
class CampaignOrder:
    field: CampaignOrderField = CampaignOrderField.CREATED_AT
    direction: OrderDirection = OrderDirection.ASC


@strawberry.type(description="A marketing campaign run by a tenant's agents.")
class Campaign(Node):
    pk: strawberry.Private[UUID]
    name: str
    goal: str
    status: CampaignStatus
    budget: Decimal
    starts_at: datetime | None
    ends_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Any) -> Campaign:
        return cls(
            id=strawberry.ID(encode_id("Campaign", row.id)),
            pk=row.id,
            name=row.name,
            goal=row.goal,
            status=CampaignStatus(row.status),
            budget=row.budget,
            starts_at=row.starts_at,
            ends_at=row.ends_at,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )

    @strawberry.field(
        description="Live counters from Redis; null (with an error) while Redis is unavailable."
    )
    async def engagement(self, info: Info) -> Engagement | None:
        return Engagement.from_counts(
            await info.context.loaders.engagement_by_campaign.load(self.pk)
        )

    @strawberry.field(
        description="Campaigns of this tenant closest in meaning to this one, best first."
    )
    async def similar(self, info: Info, limit: int | None = 5) -> list[SimilarCampaign]:
        from resolvers.search.queries import check_limit, hydrate

        loaders = info.context.loaders
        hits = await loaders.similar_by_campaign.load((self.pk, check_limit(limit, default=5)))
        return [
            SimilarCampaign(score=score, campaign=node)
            for score, node in await hydrate(loaders, hits)
            if isinstance(node, Campaign)
        ]

    @strawberry.field(description="Images and videos of this campaign, oldest first.")
    def media(
        self, info: Info, first: int | None = 20, after: str | None = None
    ) -> Connection[MediaRef]:
        from resolvers.media.types import MediaAsset

        loaders = info.context.loaders
        key = (self.pk, time_args(first, after, MEDIA_ORDER))
        return build_connection(
            lambda: loaders.media_by_campaign.load(key),
            MediaAsset.from_row,
            lambda row: encode_cursor(MEDIA_ORDER, row.created_at, row.id),
            lambda: loaders.media_count_by_campaign.load(self.pk),
        )

    @strawberry.field(description="Agents assigned to this campaign, in assignment order.")
    async def agents(
        self, info: Info, first: int | None = 20, after: str | None = None
    ) -> Connection[AgentRef]:
        from resolvers.agents.types import Agent

        loaders = info.context.loaders
        key = (self.pk, edge_args(first, after))
        return build_connection(
            lambda: loaders.agents_by_campaign.load(key),
            Agent.from_row,
            edge_cursor,
            lambda: loaders.agent_count_by_campaign.load(self.pk),
        )


@strawberry.type(description="A campaign like another one, and how alike they are.")
class SimilarCampaign:
    score: float
    campaign: Campaign
