"""Query.rateLimit: read from what this operation was charged, so it costs no store call."""

from __future__ import annotations

import strawberry

from app.cost.directives import Cost, CostStore, Store
from resolvers.info import Info
from resolvers.limits.types import RateLimit, RateLimitBucket


@strawberry.type
class LimitQueries:
    @strawberry.field(
        description="The caller's rate limit and what this operation cost.",
        directives=[Cost(weight=0), Store(name=CostStore.COMPUTE)],
    )
    def rate_limit(self, info: Info) -> RateLimit:
        context = info.context
        demand = context.demand
        principal = context.require_principal()
        if demand is None:  # not priced (a stock execution path); the configured limits
            limits = context.request.app.state.tenants.limits(principal.tenant_id)
            return RateLimit(
                cost=0,
                maximum_cost=limits.operation_maximum,
                limit=min(limits.tenant_capacity, limits.client_capacity),
                remaining=None,
                reset_at=None,
                restore_rate=limits.client_per_second,
                buckets=[],
            )
        limits = demand.limits
        bucket = demand.binding()
        buckets = [RateLimitBucket.of(b) for b in demand.buckets]
        binding = RateLimitBucket.of(bucket) if bucket is not None else None
        return RateLimit(
            cost=demand.requested.total if demand.requested is not None else 0,
            maximum_cost=limits.operation_maximum,
            limit=bucket.limit if bucket is not None else limits.client_capacity,
            remaining=bucket.remaining if bucket is not None else None,
            reset_at=binding.reset_at if binding is not None else None,
            restore_rate=bucket.per_second if bucket is not None else limits.client_per_second,
            buckets=buckets,
        )
