"""Live campaign events as GraphQL types."""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Sequence
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

import strawberry

from loaders.registry import Loaders
from resolvers.batching import batched, built, one, settle

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
    SPEND = "SPEND"


async def campaigns_of_events(events: Sequence[CampaignEvent], info: Any) -> list[Any]:
    """Through each event's own loaders: those of the batch it was read in, shared by every
    subscriber of the tenant (app/events/hub.py)."""
    from resolvers.campaigns.types import Campaign

    rows = await settle([event.loaders.campaign_by_id.load(event.campaign_pk) for event in events])
    return built(rows, Campaign.from_row)


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
        "it has since been deleted.",
        metadata=batched(campaigns_of_events),
    )
    async def campaign(self, info: strawberry.Info) -> CampaignRef | None:
        campaign: CampaignRef | None = await one(campaigns_of_events, self, info)
        return campaign
