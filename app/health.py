"""/healthz (the process answers) and /readyz (every store answers), for load balancers.

/readyz needs no credentials, so by default it says only which stores answer: the details
(server versions, data directory and free space, socket paths, bucket endpoints, error
messages, relay lag) describe the deployment to whoever asks. They come back with
``Authorization: Bearer <CHIMERA_HEALTH_TOKEN>``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import JSONResponse

from app.auth import holds_token
from app.errors import StoreUnavailable
from app.events.relay import RELAY_LAG_ALARM_SECONDS, oldest_unpublished_age
from app.extensions.demand_control import Unmetered
from app.stores.postgres import engine as pg
from app.stores.redis import client as rd


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    stores = request.app.state.stores
    timeout = request.app.state.settings.store_timeout_seconds
    probes: dict[str, Awaitable[str]] = {
        "postgres": pg.ping(stores.engine, timeout=timeout),
        "redis": rd.ping(stores.redis, stores.redis_url, timeout=timeout),
        "objects": stores.objects.ping(),
        "vectors": stores.vectors.ping(),
    }
    checks: dict[str, str] = {}
    for name, probe in probes.items():
        try:
            checks[name] = f"ok ({await probe})"
        except StoreUnavailable as exc:
            checks[name] = f"unavailable: {exc.message}"
    ready = all(v.startswith("ok") for v in checks.values())
    relay = await _relay_lag(
        stores.engine, timeout, postgres_ok=checks["postgres"].startswith("ok")
    )
    # Relay lag is reported, never a reason to answer 503. The outbox is shared: lag reads the
    # same on every instance and none of them causes it alone (any one may hold the relay's
    # lock, or none: see `chimera worker`). Failing readiness for it would take every instance
    # out of the load balancer at once, although each still serves queries and mutations, and
    # taking them out publishes nothing. Lag is for an operator, or an alert, to act on.
    body: dict[str, Any] = {
        "status": "ready" if ready else "unavailable",
        "stores": checks,
        "events": {"relay": relay},
    }
    if _may_see_details(request):
        # Operations this instance served without a charge, or refused, because the rate
        # limit buckets could not be reached (CHIMERA_RATE_LIMIT_WHEN_REDIS_DOWN).
        body["rateLimits"] = {"unmetered": Unmetered.served, "refused": Unmetered.refused}
    else:
        body["stores"] = {
            n: "ok" if v.startswith("ok") else "unavailable" for n, v in checks.items()
        }
        body["events"] = {"relay": {"ok": relay["ok"]}}
    return JSONResponse(body, status_code=200 if ready else 503)


def _may_see_details(request: Request) -> bool:
    return holds_token(
        request.headers.get("authorization"), request.app.state.settings.health_token
    )


async def _relay_lag(engine: AsyncEngine, timeout: float, *, postgres_ok: bool) -> dict[str, Any]:
    """Age of the oldest unpublished outbox event; ``ok`` is false past the alarm, or when
    the age could not be read (then ``error`` says why)."""
    report: dict[str, Any] = {
        "ok": False,
        "oldest_unpublished_seconds": None,
        "alarm_seconds": RELAY_LAG_ALARM_SECONDS,
    }
    if not postgres_ok:  # the store check already waited for it once
        report["error"] = "not checked: PostgreSQL is unavailable"
        return report
    try:
        async with asyncio.timeout(timeout):
            age = await oldest_unpublished_age(engine)
    except TimeoutError:
        report["error"] = f"no answer from PostgreSQL within {timeout:g}s"
        return report
    except Exception as exc:  # any driver or pool failure: reported, never a 500
        first_line = next(iter(str(exc).strip().splitlines()), "")
        report["error"] = f"{type(exc).__name__}: {first_line}".rstrip(": ")
        return report
    report["oldest_unpublished_seconds"] = None if age is None else round(age, 3)
    report["ok"] = age is None or age <= RELAY_LAG_ALARM_SECONDS
    return report
