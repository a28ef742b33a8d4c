"""GraphQL types of demand control: what the caller may still spend."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import Enum

import strawberry

from app.cost.directives import Cost, ListSize
from app.ratelimit.buckets import Bucket


@strawberry.enum(description="Whose budget a bucket is.")
class RateLimitScope(Enum):
    TENANT = "TENANT"
    CLIENT = "CLIENT"


@strawberry.type(
    description="One bucket: its capacity in points and what is left of it.",
    directives=[Cost(weight=0)],
)
class RateLimitBucket:
    scope: RateLimitScope
    limit: int = strawberry.field(description="Points the bucket holds when full.")
    remaining: int = strawberry.field(description="Points left after this operation.")
    restore_rate: float = strawberry.field(description="Points regained per second.")
    reset_at: datetime = strawberry.field(description="When the bucket will be full again.")

    @classmethod
    def of(cls, bucket: Bucket) -> RateLimitBucket:
        return cls(
            scope=RateLimitScope(bucket.scope.value),
            limit=bucket.limit,
            remaining=bucket.remaining,
            restore_rate=bucket.per_second,
            reset_at=datetime.fromtimestamp(bucket.at + bucket.full_in, tz=UTC),
        )


@strawberry.type(
    description="The caller's rate limit, as of this operation (which it includes): the "
    "bucket that runs out first, and both buckets. Operations are priced in points "
    "(see the @cost and @listSize directives) and charged to the tenant's bucket and to the "
    "client's (its token or API key); what a response really cost is given back.",
    directives=[Cost(weight=0)],
)
class RateLimit:
    cost: int = strawberry.field(description="What this operation was priced at.")
    maximum_cost: int = strawberry.field(description="What one operation may be priced at.")
    limit: int = strawberry.field(description="Capacity of the bucket that runs out first.")
    remaining: int | None = strawberry.field(
        description="Points left in it; null while the buckets cannot be read (Redis down) "
        "or rate limits are off."
    )
    reset_at: datetime | None = strawberry.field(description="When it will be full again.")
    restore_rate: float = strawberry.field(description="Points it regains per second.")
    buckets: list[RateLimitBucket] = strawberry.field(directives=[ListSize(assumed_size=2)])
