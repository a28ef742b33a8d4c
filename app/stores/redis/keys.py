"""Every Redis key Chimera writes, in one place, each prefixed by its tenant.

The tenant prefix is what keeps one tenant's counters out of another's reach in a store
with no notion of tenants; building keys anywhere else would make that easy to forget.

The tenant id in it is in braces, `chimera:t:{<tenant>}:...`: a Redis Cluster hash tag, so
every key of a tenant hashes to the same slot. Every script, pipeline and transaction touches
one tenant's keys only, so it stays in one slot, which is what Redis Cluster requires of them
(and what a script's keys built from the prefix inside Lua rely on). Keys written before the
braces are moved once, at start-up (app/stores/redis/layout.py).
"""

from __future__ import annotations

from functools import lru_cache
from uuid import UUID

PREFIX = "chimera"

ENGAGEMENT_FIELDS = ("impressions", "clicks", "likes", "shares", "comments")


def campaign_engagement(tenant_id: UUID, campaign_id: UUID) -> str:
    return f"{tenant_prefix(tenant_id)}campaign:{campaign_id}:engagement"


def event_stream(tenant_id: UUID) -> str:
    """The tenant's campaign events, in publication order: what subscriptions read."""
    return f"{tenant_prefix(tenant_id)}events"


def published_marker(tenant_id: UUID, event_id: int) -> str:
    """Set atomically with the XADD of outbox event ``event_id``, so a relay that crashed
    after publishing and before marking never adds the same event to the stream twice."""
    return f"{tenant_prefix(tenant_id)}published:{event_id}"


def engagement_applied(tenant_id: UUID, event_id: int) -> str:
    """Set in the same script as the HINCRBY of ENGAGEMENT outbox event ``event_id``, so the
    request and the relay, which both try to apply it, count it once between them."""
    return f"{tenant_prefix(tenant_id)}engagement-applied:{event_id}"


def engagement_fence(tenant_id: UUID) -> str:
    """Held by `chimera reconcile` while it measures the tenant's counters: no increment is
    applied meanwhile (the relay applies them once it is gone), so the measure is exact."""
    return f"{tenant_prefix(tenant_id)}engagement-fence"


# Remembered per tenant: a dashboard page builds hundreds of keys (three per agent for its
# task counts), and formatting the tenant's UUID was most of each key's cost.
@lru_cache(maxsize=4096)
def tenant_prefix(tenant_id: UUID) -> str:
    """The start of every key of a tenant. The task scripts build the keys of a task's agent
    and campaign from it (a task names them), so they can only ever reach this tenant's."""
    return f"{PREFIX}:t:{{{tenant_id}}}:"


def task(tenant_id: UUID, task_id: UUID) -> str:
    return f"{tenant_prefix(tenant_id)}task:{task_id}"


def agent_ready(tenant_id: UUID, agent_id: UUID) -> str:
    """Tasks an agent may claim now, best priority first, then oldest (app/queue)."""
    return f"{tenant_prefix(tenant_id)}agent:{agent_id}:ready"


def agent_delayed(tenant_id: UUID, agent_id: UUID) -> str:
    """Queued tasks not to be claimed before their time (notBefore, or a retry's backoff)."""
    return f"{tenant_prefix(tenant_id)}agent:{agent_id}:delayed"


def agent_running(tenant_id: UUID, agent_id: UUID) -> str:
    """An agent's leased tasks by lease expiry."""
    return f"{tenant_prefix(tenant_id)}agent:{agent_id}:running"


def task_index(tenant_id: UUID, owner: str, owner_id: UUID, status: str) -> str:
    """An owner's (``agent`` or ``campaign``) tasks of one status, or ``ALL``, by sequence."""
    return f"{tenant_prefix(tenant_id)}{owner}:{owner_id}:tasks:{status}"


def tenant_tasks(tenant_id: UUID, status: str) -> str:
    """All the tenant's tasks of one status, by sequence (``DEAD``: the dead letters)."""
    return f"{tenant_prefix(tenant_id)}tasks:{status}"


def task_leases(tenant_id: UUID) -> str:
    """Every leased task of the tenant by expiry: what the sweeper takes back."""
    return f"{tenant_prefix(tenant_id)}tasks:leases"


def task_key(tenant_id: UUID, digest: str) -> str:
    """An enqueue's idempotency key (hashed), naming the task it created."""
    return f"{tenant_prefix(tenant_id)}task-key:{digest}"


def agent_event_stream(tenant_id: UUID) -> str:
    """The tenant's task events, for `agentEvents` and runtimes waiting for work."""
    return f"{tenant_prefix(tenant_id)}agent-events"


def agent_session(tenant_id: UUID, agent_id: UUID) -> str:
    """An agent's working state: a JSON document with a version, expiring (app/agent_sessions)."""
    return f"{tenant_prefix(tenant_id)}agent:{agent_id}:session"


def similar_generation(tenant_id: UUID) -> str:
    """Bumped after every change to the tenant's campaign vectors (app/stores/vectors/cached)."""
    return f"{tenant_prefix(tenant_id)}similar-generation"


def similar_entry(tenant_id: UUID, campaign_id: UUID, limit: int) -> str:
    """The start of a cached "more like this" answer's key; the generation ends it."""
    return f"{tenant_prefix(tenant_id)}similar:{campaign_id}:{limit}:"


def persisted_query(tenant_id: UUID, digest: str) -> str:
    """A document a client registered by the automatic persisted queries protocol, per
    tenant: no tenant learns from a hit which documents another one runs."""
    return f"{tenant_prefix(tenant_id)}apq:{digest}"


def embedding(tenant_id: UUID, digest: str) -> str:
    """A search text's vector (its model and text hashed), per tenant: no tenant can tell from
    a fast answer what another one searched for."""
    return f"{tenant_prefix(tenant_id)}embedding:{digest}"


def written_lsn(tenant_id: UUID, client: str) -> str:
    """Where a client's last mutation left the primary's WAL, while replicas may lag behind
    it: its queries read a replica only once it has replayed that far (read replicas)."""
    return f"{tenant_prefix(tenant_id)}written-lsn:{client}"
