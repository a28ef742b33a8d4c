"""One request's demand: its price, what it was charged, and how that is reported.

The same record feeds ``extensions.cost`` on the response, the ``rateLimit`` query field and
the HTTP headers (``RateLimit-Policy`` and ``RateLimit``, draft-ietf-httpapi-ratelimit-headers,
and ``Retry-After`` with a 429), so the three can never disagree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from app.cost.model import STORES, Price
from app.ratelimit.buckets import Bucket, Charge
from app.ratelimit.limits import Limits


@dataclass(slots=True)
class Demand:
    limits: Limits
    requested: Price | None = None
    actual: Price | None = None
    charge: Charge | None = None  # None: not metered (limits off, or Redis down and open)
    refunded: int = 0

    @property
    def buckets(self) -> tuple[Bucket, ...]:
        if self.charge is None:
            return ()
        if not self.refunded:
            return self.charge.buckets
        return tuple(bucket.refunded(self.refunded) for bucket in self.charge.buckets)

    def binding(self) -> Bucket | None:
        buckets = self.buckets
        return min(buckets, key=lambda b: b.remaining) if buckets else None

    def report(self) -> dict[str, Any]:
        """``extensions.cost``: the price before, the cost after, the binding bucket."""
        requested = self.requested
        actual = self.actual
        bucket = self.binding()
        by_store: dict[str, dict[str, int]] = {}
        for i, store in enumerate(STORES):
            asked = requested.by_store[i] if requested is not None else 0
            spent = actual.by_store[i] if actual is not None else 0
            if asked or spent:
                by_store[store] = {"requested": asked, "actual": spent}
        return {
            "requested": requested.total if requested is not None else 0,
            "actual": actual.total if actual is not None else None,
            "maximum": self.limits.operation_maximum,
            "limit": bucket.limit if bucket is not None else None,
            "remaining": bucket.remaining if bucket is not None else None,
            "resetAt": reset_at(bucket) if bucket is not None else None,
            "restoreRate": bucket.per_second if bucket is not None else None,
            "throttled": self.charge is not None and not self.charge.allowed,
            "byStore": by_store,
            "buckets": [
                {
                    "scope": b.scope.value,
                    "limit": b.limit,
                    "remaining": b.remaining,
                    "restoreRate": b.per_second,
                    "resetAt": reset_at(b),
                }
                for b in self.buckets
            ],
        }

    def headers(self) -> dict[str, str]:
        """The IETF RateLimit fields of this response (none when it was not metered)."""
        buckets = self.buckets
        if not buckets:
            return {}
        headers = {
            "RateLimit-Policy": ", ".join(
                f'"{b.scope.value.lower()}";q={b.limit};w={max(1, math.ceil(b.window))}'
                for b in buckets
            ),
            "RateLimit": ", ".join(
                f'"{b.scope.value.lower()}";r={b.remaining};t={math.ceil(b.full_in)}'
                for b in buckets
            ),
        }
        if self.charge is not None and not self.charge.allowed:
            headers["Retry-After"] = str(max(1, math.ceil(self.charge.retry_after)))
        return headers


def reset_at(bucket: Bucket) -> str:
    """When the bucket holds its whole capacity again, as the DateTime scalar writes it."""
    moment = datetime.fromtimestamp(bucket.at + bucket.full_in, tz=UTC)
    return moment.isoformat()
