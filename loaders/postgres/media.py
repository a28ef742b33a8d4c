"""Media of many campaigns in one statement: ranked per campaign, cut at ``first + 1``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from sqlalchemy import func, select, tuple_

from app.pagination import PageArgs
from app.stores.postgres.tables import media_asset
from loaders.base import TenantLoader
from loaders.postgres.partitioned import PartitionedPageLoader

MEDIA_ORDER = "created_at:asc"


class MediaByCampaignLoader(PartitionedPageLoader):
    def statement(self, campaign_ids: list[UUID], args: PageArgs) -> Any:
        m = media_asset
        conditions = [m.c.tenant_id == self.tenant_id, m.c.campaign_id.in_(campaign_ids)]
        if args.after is not None:
            conditions.append(
                tuple_(m.c.created_at, m.c.id) > tuple_(args.after.value, args.after.pk)
            )
        rank = func.row_number().over(
            partition_by=m.c.campaign_id, order_by=(m.c.created_at, m.c.id)
        )
        ranked = (
            select(m, m.c.campaign_id.label("parent_id"), rank.label("rank"))
            .where(*conditions)
            .subquery()
        )
        return (
            select(ranked)
            .where(ranked.c.rank <= args.first + 1)
            .order_by(ranked.c.parent_id, ranked.c.rank)
        )


class MediaCountByCampaignLoader(TenantLoader[UUID, int]):
    async def fetch(self, keys: Sequence[UUID]) -> list[int]:
        m = media_asset
        query = (
            select(m.c.campaign_id, func.count())
            .where(m.c.tenant_id == self.tenant_id, m.c.campaign_id.in_(keys))
            .group_by(m.c.campaign_id)
        )
        async with self.ctx.engine.connect() as conn:
            counts = {campaign_id: int(n) for campaign_id, n in await conn.execute(query)}
        return [counts.get(key, 0) for key in keys]
