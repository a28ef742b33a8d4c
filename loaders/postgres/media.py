"""Media of many campaigns in one statement: each campaign's first ``first + 1`` assets from
the (tenant_id, campaign_id, created_at, id) index."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from loaders.base import TenantLoader
from loaders.postgres.partitioned import PartitionedPageLoader, lateral

MEDIA_ORDER = "created_at:asc"


class MediaByCampaignLoader(PartitionedPageLoader):
    first_page, next_page = lateral(
        "SELECT m.* FROM media_asset m WHERE m.tenant_id = $1 AND m.campaign_id = p.id",
        order="m.created_at, m.id",
        after="(m.created_at, m.id) > ($4, $5)",
        outer_order="x.created_at, x.id",
    )


class MediaCountByCampaignLoader(TenantLoader[UUID, int]):
    async def fetch(self, keys: Sequence[UUID]) -> list[int]:
        rows = await self.read(
            "SELECT campaign_id, count(*) AS n FROM media_asset "
            "WHERE tenant_id = $1 AND campaign_id = ANY($2::uuid[]) GROUP BY campaign_id",
            self.tenant_id,
            list(keys),
        )
        counts = {row["campaign_id"]: int(row["n"]) for row in rows}
        return [counts.get(key, 0) for key in keys]
