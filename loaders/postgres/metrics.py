"""Metrics of many campaigns over one window, in one statement: the stored minutes summed
into the window's buckets (``width_bucket`` over the bucket boundaries, which the caller
computes in its time zone), empty buckets left to the caller to fill."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from loaders.base import TenantLoader

MEASURES = ("impressions", "clicks", "likes", "shares", "comments", "spend")


@dataclass(frozen=True)
class Window:
    """Bucket boundaries, ascending: bucket i runs from boundaries[i] to boundaries[i + 1]."""

    boundaries: tuple[datetime, ...]

    @property
    def buckets(self) -> int:
        return len(self.boundaries) - 1


COUNTERS = MEASURES[:-1]
BIGINT_MAX = 2**63 - 1

# Sums per bucket index (1-based) of the boundaries. A sum of bigints is a numeric, which
# reaches Python as a Decimal: a page of hourly points is thousands of them, decoded and then
# converted back to int, about half this statement's CPU in the app. The counters' sums come
# back as bigints instead (held at bigint's largest value, far past what GraphQL's 32-bit Int
# can show anyway), and spend with the two decimals clients see.
METRICS = (
    "SELECT campaign_id, width_bucket(minute, $3::timestamptz[]) AS i, "
    + ", ".join(f"least(sum({m}), {BIGINT_MAX})::bigint AS {m}" for m in COUNTERS)
    + ", round(sum(spend), 2) AS spend"
    " FROM campaign_metric WHERE tenant_id = $1 AND campaign_id = ANY($2::uuid[]) "
    "AND minute >= $4 AND minute < $5 GROUP BY campaign_id, i"
)


class MetricsByCampaignLoader(TenantLoader[tuple[UUID, Window], dict[int, Any]]):
    """Per campaign, the non-empty buckets of a window: {bucket index: row}."""

    async def fetch(self, keys: Sequence[tuple[UUID, Window]]) -> list[dict[int, Any]]:
        groups: dict[Window, list[UUID]] = {}
        for campaign_id, window in keys:
            groups.setdefault(window, []).append(campaign_id)
        # By window, then campaign: a window hashes its every boundary, so it is looked up
        # once per key, not once per row.
        found: dict[Window, dict[UUID, dict[int, Any]]] = {}
        for window, campaign_ids in groups.items():
            rows = await self.read(
                METRICS,
                self.tenant_id,
                campaign_ids,
                list(window.boundaries),
                window.boundaries[0],
                window.boundaries[-1],
            )
            buckets: dict[UUID, dict[int, Any]] = {}
            for row in rows:
                buckets.setdefault(row["campaign_id"], {})[row["i"] - 1] = row
            found[window] = buckets
        return [found[window].get(campaign_id, {}) for campaign_id, window in keys]
