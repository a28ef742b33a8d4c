"""/healthz (the process answers) and /readyz (every store answers), for load balancers."""

from __future__ import annotations

from collections.abc import Awaitable

from starlette.requests import Request
from starlette.responses import JSONResponse

from app.errors import StoreUnavailable
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
    return JSONResponse(
        {"status": "ready" if ready else "unavailable", "stores": checks},
        status_code=200 if ready else 503,
    )
