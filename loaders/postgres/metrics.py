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


# Sums per bucket index (1-based) of the boundaries.
METRICS = (
    "SELECT campaign_id, width_bucket(minute, $3::timestamptz[]) AS i, "
    + ", ".join(f"sum({m}) AS {m}" for m in MEASURES)
    + " FROM campaign_metric WHERE tenant_id = $1 AND campaign_id = ANY($2::uuid[]) "
    "AND minute >= $4 AND minute < $5 GROUP BY campaign_id, i"
)


class MetricsByCampaignLoader(TenantLoader[tuple[UUID, Window], dict[int, Any]]):
    """Per campaign, the non-empty buckets of a window: {bucket index: row}."""

    async def fetch(self, keys: Sequence[tuple[UUID, Window]]) -> list[dict[int, Any]]:
        groups: dict[Window, list[UUID]] = {}
        for campaign_id, window in keys:
            groups.setdefault(window, []).append(campaign_id)
        found: dict[tuple[UUID, Window], dict[int, Any]] = {}
        for window, campaign_ids in groups.items():
            rows = await self.read(
                METRICS,
                self.tenant_id,
                campaign_ids,
                list(window.boundaries),
                window.boundaries[0],
                window.boundaries[-1],
            )
            for row in rows:
                found.setdefault((row["campaign_id"], window), {})[int(row["i"]) - 1] = row
        return [found.get(key, {}) for key in keys]
