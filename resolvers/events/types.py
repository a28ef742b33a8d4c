"""Live campaign events as GraphQL types."""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

import strawberry

from loaders.registry import Loaders

if TYPE_CHECKING:
    from resolvers.campaigns.types import Campaign

CampaignRef = Annotated["Campaign", strawberry.lazy("resolvers.campaigns.types")]


@strawberry.enum
class CampaignEventType(Enum):
    CREATED = "CREATED"
    UPDATED = "UPDATED"
    STATUS_CHANGED = "STATUS_CHANGED"
    AGENT_ASSIGNED = "AGENT_ASSIGNED"
    AGENT_UNASSIGNED = "AGENT_UNASSIGNED"
    MEDIA_READY = "MEDIA_READY"
    ENGAGEMENT = "ENGAGEMENT"


@strawberry.type(description="Something that happened to a campaign, in commit order.")
class CampaignEvent:
    id: str = strawberry.field(
        description="A resume cursor: pass it as `after` to receive what came after it."
    )
    type: CampaignEventType
    occurred_at: datetime
    campaign_pk: strawberry.Private[UUID]
    loaders: strawberry.Private[Loaders]
    # Results of executing operations on this event, shared by the subscribers that run the
    # same one (see app/execution.py); one event object per batch makes that possible.
    shared_results: strawberry.Private[dict[Hashable, Any]] = dataclasses.field(
        default_factory=dict
    )

    @strawberry.field(
        description="The campaign as it is now, through the same loaders as queries; null if "
        "it has since been deleted."
    )
    async def campaign(self) -> CampaignRef | None:
        from resolvers.campaigns.types import Campaign

        row = await self.loaders.campaign_by_id.load(self.campaign_pk)
        return Campaign.from_row(row) if row is not None else None
