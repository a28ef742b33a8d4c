"""Every Redis key Chimera writes, in one place, each prefixed by its tenant.

The tenant prefix is what keeps one tenant's counters out of another's reach in a store
with no notion of tenants; building keys anywhere else would make that easy to forget.
"""

from __future__ import annotations

from uuid import UUID

PREFIX = "chimera"

ENGAGEMENT_FIELDS = ("impressions", "clicks", "likes", "shares", "comments")


def campaign_engagement(tenant_id: UUID, campaign_id: UUID) -> str:
    return f"{PREFIX}:t:{tenant_id}:campaign:{campaign_id}:engagement"


def agent_tasks(tenant_id: UUID, agent_id: UUID) -> str:
    return f"{PREFIX}:t:{tenant_id}:agent:{agent_id}:tasks"


def event_stream(tenant_id: UUID) -> str:
    """The tenant's campaign events, in publication order: what subscriptions read."""
    return f"{PREFIX}:t:{tenant_id}:events"


def published_marker(tenant_id: UUID, event_id: int) -> str:
    """Set atomically with the XADD of outbox event ``event_id``, so a relay that crashed
    after publishing and before marking never adds the same event to the stream twice."""
    return f"{PREFIX}:t:{tenant_id}:published:{event_id}"


def engagement_applied(tenant_id: UUID, event_id: int) -> str:
    """Set in the same script as the HINCRBY of ENGAGEMENT outbox event ``event_id``, so the
    request and the relay, which both try to apply it, count it once between them."""
    return f"{PREFIX}:t:{tenant_id}:engagement-applied:{event_id}"


def engagement_fence(tenant_id: UUID) -> str:
    """Held by `chimera reconcile` while it measures the tenant's counters: no increment is
    applied meanwhile (the relay applies them once it is gone), so the measure is exact."""
    return f"{PREFIX}:t:{tenant_id}:engagement-fence"
