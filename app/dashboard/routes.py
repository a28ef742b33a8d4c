"""The dashboard's routes: its page at `/`, its files (compressed), and the demo sign-in.

The page is plain HTML, CSS and ES modules from ``app/static/dashboard`` (no build step);
the two client libraries it uses are vendored there, pinned (README.md beside them).
Everything it loads comes from this app, so it works offline and its first load stays
small (docs/dashboard.md has the budget and how it is checked).
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from app.dashboard.session import demo_token

DASHBOARD_DIR = Path(__file__).resolve().parent.parent / "static" / "dashboard"

# Scripts and styles from this origin only; media and presigned uploads may live on an
# object store's host, and the live updates come over a WebSocket to this one.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob: http: "
    "https:; media-src 'self' blob: http: https:; connect-src 'self' ws: wss: http: https:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)


class _Files(StaticFiles):
    """The dashboard's files, revalidated on each load (an ETag answers 304 when unchanged),
    so a new release is picked up without a cache-busting build step."""

    def file_response(self, *args: object, **kwargs: object) -> Response:
        response = super().file_response(*args, **kwargs)  # type: ignore[arg-type]
        response.headers["Cache-Control"] = "no-cache"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


async def page(request: Request) -> Response:
    response = FileResponse(DASHBOARD_DIR / "index.html", media_type="text/html")
    response.headers["Cache-Control"] = "no-cache"
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


async def session(request: Request) -> Response:
    """The demo tenant's token, for a browser on this machine in development. Elsewhere the
    page asks for a token or an API key: 404 says there is no such shortcut."""
    state = request.app.state
    if state.settings.is_production or not _on_loopback(request):
        return JSONResponse({"error": "sign in with a token or an API key"}, status_code=404)
    token = await demo_token(state.stores.engine, state.settings, state.auth_secret)
    if token is None:
        return JSONResponse({"error": "no demo tenant here (chimera serve seeds one)"}, 404)
    return JSONResponse({"token": token, "tenant": "demo"}, headers={"Cache-Control": "no-store"})


def _on_loopback(request: Request) -> bool:
    """Sent from this machine to a loopback name: another machine cannot have it, nor can a
    page of another site that rebinds its own host name to 127.0.0.1 (its Host differs)."""
    if request.client is None or request.url.hostname not in LOOPBACK_NAMES:
        return False
    try:
        return ipaddress.ip_address(request.client.host).is_loopback
    except ValueError:
        return False


LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


def dashboard_routes() -> list[BaseRoute]:
    files = GZipMiddleware(_Files(directory=DASHBOARD_DIR), minimum_size=512)
    return [
        Route("/", page, methods=["GET", "HEAD"]),
        Route("/dashboard/session", session, methods=["POST"]),
        Mount("/dashboard", app=files, name="dashboard"),
    ]
