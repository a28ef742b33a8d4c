"""Rate limits for bench tenants: buckets too large to ever refuse.

A bench measures how fast requests are served, not how they are throttled: its tenants get
these limits, so that every request still pays its charge (the Redis call of app/ratelimit)
and none is turned away. The columns are a tenant row's overrides (migration 0010).
"""

from __future__ import annotations

BUCKET = 2_000_000_000  # points, and points a second: no bench spends that

UNLIMITED: dict[str, int | float] = {
    "rate_capacity": BUCKET,
    "rate_per_second": float(BUCKET),
    "client_rate_capacity": BUCKET,
    "client_rate_per_second": float(BUCKET),
}
