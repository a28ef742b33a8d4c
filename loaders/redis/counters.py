"""Counters read from Redis: one command per batch, whatever the number of keys."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

from app.stores.redis import keys
from app.stores.redis.scripts import SUM_MANY, hmget_many
from loaders.base import TenantLoader


@dataclass(frozen=True)
class EngagementCounts:
    impressions: int = 0
    clicks: int = 0
    likes: int = 0
    shares: int = 0
    comments: int = 0


def engagement_from(values: Sequence[bytes | str | None]) -> EngagementCounts:
    return EngagementCounts(*(int(v) if v is not None else 0 for v in values))


class EngagementByCampaignLoader(TenantLoader[UUID, EngagementCounts]):
    store = "Redis"

    async def fetch(self, keys_: Sequence[UUID]) -> list[EngagementCounts]:
        names = [keys.campaign_engagement(self.tenant_id, pk) for pk in keys_]
        replies = await hmget_many(self.ctx.redis, names, keys.ENGAGEMENT_FIELDS)
        return [engagement_from(values) for values in replies]


class EngagementTotalLoader(TenantLoader[tuple[UUID, ...], EngagementCounts]):
    """The engagement of many campaigns summed inside Redis: one command per set of
    campaigns, five numbers back."""

    store = "Redis"

    async def fetch(self, keys_: Sequence[tuple[UUID, ...]]) -> list[EngagementCounts]:
        totals = []
        for campaign_ids in keys_:
            names = [keys.campaign_engagement(self.tenant_id, pk) for pk in campaign_ids]
            sums = await SUM_MANY(self.ctx.redis, names, keys.ENGAGEMENT_FIELDS) if names else []
            totals.append(engagement_from(sums) if sums else EngagementCounts())
        return totals
