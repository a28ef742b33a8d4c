"""Engagement counters as GraphQL types."""

from __future__ import annotations

from enum import Enum

import strawberry

from loaders.redis.counters import EngagementCounts


@strawberry.enum
class EngagementKind(Enum):
    IMPRESSION = "impressions"
    CLICK = "clicks"
    LIKE = "likes"
    SHARE = "shares"
    COMMENT = "comments"


@strawberry.type(description="Live engagement counters of a campaign, kept in Redis.")
class Engagement:
    __slots__ = ("clicks", "comments", "impressions", "likes", "shares")
    impressions: int
    clicks: int
    likes: int
    shares: int
    comments: int

    @classmethod
    def from_counts(cls, counts: EngagementCounts) -> Engagement:
        return cls(
            impressions=counts.impressions,
            clicks=counts.clicks,
            likes=counts.likes,
            shares=counts.shares,
            comments=counts.comments,
        )
