"""What a search text may cost the model: a bound per request and a budget per tenant.

Embedding is the one thing a read-only request can make expensive with nothing but text: a
1,000-character query is up to 256 word pieces, about a twentieth of a second of both cores,
and thirty aliased ones are seconds. Cost is counted in the tokens the model actually runs
(word pieces after truncation, [CLS] and [SEP] included), so it does not matter how the text
is spelt, only what it costs.

The tenant budget lives in this process (one bucket per tenant per app instance), which is
enough to stop one client monopolising the model of the instance it reaches; with N instances
a tenant may spend up to N budgets. A shared budget would live in Redis under the tenant's
keys; that belongs with the per-tenant rate limits.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from uuid import UUID

from app.errors import ChimeraError, ErrorCode
from app.stores.embeddings.port import EmbedMeter

DEFAULT_TOKENS_PER_REQUEST = 2048
DEFAULT_TOKENS_PER_TENANT_PER_MINUTE = 20_000


@dataclass(frozen=True)
class EmbedLimits:
    """CHIMERA_MAX_EMBED_TOKENS_PER_REQUEST and CHIMERA_EMBED_TOKENS_PER_TENANT_PER_MINUTE."""

    tokens_per_request: int = DEFAULT_TOKENS_PER_REQUEST
    tokens_per_tenant_per_minute: int = DEFAULT_TOKENS_PER_TENANT_PER_MINUTE


class EmbeddingLimitExceeded(ChimeraError):
    """Search texts that would cost the model more than a limit allows; nothing was embedded."""

    code = ErrorCode.OPERATION_LIMIT


class TenantTokenBudgets:
    """A bucket of tokens per tenant, refilled continuously at its per-minute rate.

    A bucket rather than a fixed window: a tenant can never spend two minutes' worth across
    a window's edge, and one that has been quiet starts with a full minute's worth.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[UUID, tuple[float, float]] = {}  # tenant: (tokens left, as of)

    def take(self, tenant_id: UUID, tokens: int, per_minute: int) -> float:
        """Spend ``tokens`` and return 0, or spend nothing and return the seconds until the
        bucket will hold them."""
        now = self._clock()
        rate = per_minute / 60.0
        with self._lock:
            left, since = self._buckets.get(tenant_id, (float(per_minute), now))
            left = min(float(per_minute), left + (now - since) * rate)
            if tokens <= left:
                self._buckets[tenant_id] = (left - tokens, now)
                self._forget_full(now, rate, per_minute)
                return 0.0
            self._buckets[tenant_id] = (left, now)
            return (tokens - left) / rate

    def left(self, tenant_id: UUID, per_minute: int) -> int:
        """Tokens the tenant could spend now."""
        now = self._clock()
        with self._lock:
            left, since = self._buckets.get(tenant_id, (float(per_minute), now))
        return int(min(float(per_minute), left + (now - since) * per_minute / 60.0))

    def _forget_full(self, now: float, rate: float, per_minute: int) -> None:
        """Drop buckets that have refilled: a full bucket is the same as none, and tenants
        that searched once should not be remembered for ever."""
        if len(self._buckets) < 1024:
            return
        for tenant_id, (left, since) in list(self._buckets.items()):
            if left + (now - since) * rate >= per_minute:
                del self._buckets[tenant_id]


def admit(
    limits: EmbedLimits,
    budgets: TenantTokenBudgets,
    tenant_id: UUID,
    tokens: int,
    meter: EmbedMeter,
) -> None:
    """Charge ``tokens`` to the request's meter and the tenant's budget, or raise
    EmbeddingLimitExceeded having charged neither."""
    wanted = meter.tokens + tokens
    if wanted > limits.tokens_per_request:
        raise EmbeddingLimitExceeded(
            f"The search texts of one request may come to at most {limits.tokens_per_request}"
            f" tokens (word pieces; a query counts up to 256); this request's come to {wanted}."
            " Send fewer or shorter queries.",
            limit="embedTokensPerRequest",
            allowed=limits.tokens_per_request,
            requested=wanted,
        )
    per_minute = limits.tokens_per_tenant_per_minute
    wait = budgets.take(tenant_id, tokens, per_minute)
    if wait > 0:
        retry = max(1, math.ceil(wait))
        raise EmbeddingLimitExceeded(
            f"This tenant's search texts may come to at most {per_minute} tokens a minute;"
            f" {tokens} more do not fit now. Try again in {retry} s.",
            limit="embedTokensPerTenantPerMinute",
            allowed=per_minute,
            requested=tokens,
            retryAfterSeconds=retry,
        )
    meter.tokens = wanted
