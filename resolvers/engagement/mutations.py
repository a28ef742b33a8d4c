"""recordEngagement."""

from __future__ import annotations

import strawberry

from app.commands.engagement import record_engagement
from app.cost.directives import POSTGRES
from app.ids import decode_id
from resolvers.engagement.types import Engagement, EngagementKind
from resolvers.info import Info
from resolvers.permissions import IsEditor


@strawberry.input
class RecordEngagementInput:
    campaign_id: strawberry.ID
    kind: EngagementKind
    count: int = 1
    idempotency_key: str | None = strawberry.field(
        default=None,
        description="A retry with the same key within 24 hours counts once and answers with "
        "the counts; the same key with another increment is IDEMPOTENCY_KEY_REUSED.",
    )


@strawberry.type
class RecordEngagementPayload:
    engagement: Engagement


@strawberry.type
class EngagementMutations:
    @strawberry.mutation(permission_classes=[IsEditor], directives=[POSTGRES])
    async def record_engagement(
        self, info: Info, input: RecordEngagementInput
    ) -> RecordEngagementPayload | None:
        ctx = info.context
        campaign_id = decode_id(input.campaign_id, "Campaign")
        counts = await record_engagement(
            ctx.stores.engine,
            ctx.stores.redis,
            ctx.require_principal(),
            campaign_id,
            input.kind.value,
            input.count,
            timeout=ctx.settings.store_timeout_seconds,
            idempotency_key=input.idempotency_key,
        )
        ctx.loaders.engagement_by_campaign.clear(campaign_id).prime(campaign_id, counts)
        return RecordEngagementPayload(engagement=Engagement.from_counts(counts))
