"""The dashboard's page and files as HTTP sees them: everything from the app, pinned,
compressed; and the demo sign-in only for a browser on the same machine in development."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path

import pytest
from httpx import ASGITransport, AsyncClient
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from app.commands.tenants import create_tenant, tenant_by_slug
from app.dashboard.routes import DASHBOARD_DIR
from app.seed import DEMO_SLUG
from app.settings import Environment, Settings
from tests.support import another_app

VENDOR = DASHBOARD_DIR / "vendor"


def _named_files(page: str) -> list[tuple[str, str | None]]:
    """(url, integrity or None) of every script and stylesheet the page loads."""
    found = []
    for tag in re.findall(r"<(?:script|link)\b[^>]*>", page):
        url = re.search(r'(?:src|href)="([^"]+)"', tag)
        if url is None or url.group(1).startswith("data:") or "modulepreload" in tag:
            continue
        integrity = re.search(r'integrity="([^"]+)"', tag)
        found.append((url.group(1), integrity.group(1) if integrity else None))
    return found


def _sri(content: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(content).digest()).decode()


async def test_the_page_loads_only_files_the_app_serves_and_pins_the_vendored_ones(
    http: AsyncClient,
) -> None:
    page = await http.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert not re.search(r'(?:src|href)="(?:https?:)?//', page.text), "the page names another host"
    named = _named_files(page.text)
    assert {url for url, _ in named} == {
        "/dashboard/vendor/uPlot.min.css",
        "/dashboard/app.css",
        "/dashboard/vendor/graphql-ws.min.js",
        "/dashboard/vendor/uPlot.iife.min.js",
        "/dashboard/js/main.js",
    }
    for url, integrity in named:
        served = await http.get(url)
        assert served.status_code == 200, url
        if url.startswith("/dashboard/vendor/"):
            assert integrity == _sri(served.content), f"{url} does not match its pinned hash"


def test_vendored_files_are_the_pinned_releases() -> None:
    manifest = json.loads((VENDOR / "assets.json").read_text())
    assert set(manifest) == {"graphql-ws.min.js", "uPlot.iife.min.js", "uPlot.min.css"}
    for name, entry in manifest.items():
        assert entry["integrity"] == _sri((VENDOR / name).read_bytes()), name
        assert (VENDOR / entry["license_file"]).is_file(), entry["license_file"]


async def test_every_module_the_page_imports_is_served_and_preloaded(http: AsyncClient) -> None:
    """The ES modules import each other by relative path; a renamed file would leave the
    page blank, so every import is followed from main.js. The page preloads exactly those
    modules (all at once, instead of one level of imports after another)."""
    seen: set[str] = set()
    pending = ["/dashboard/js/main.js"]
    while pending:
        url = pending.pop()
        if url in seen:
            continue
        seen.add(url)
        served = await http.get(url)
        assert served.status_code == 200, url
        assert served.headers["content-type"].startswith("text/javascript"), url
        base = url.rsplit("/", 1)[0]
        for target in re.findall(r'from "(\.{1,2}/[^"]+)"', served.text):
            parts = (base + "/" + target).split("/")
            resolved: list[str] = []
            for part in parts:
                if part == "..":
                    resolved.pop()
                elif part != ".":
                    resolved.append(part)
            pending.append("/".join(resolved))
    assert len(seen) >= 8
    page = (await http.get("/")).text
    preloaded = set(re.findall(r'<link rel="modulepreload" href="([^"]+)">', page))
    assert preloaded == seen - {"/dashboard/js/main.js"}


async def test_files_are_compressed_and_revalidated(http: AsyncClient) -> None:
    served = await http.get(
        "/dashboard/vendor/uPlot.iife.min.js", headers={"Accept-Encoding": "gzip"}
    )
    assert served.headers["content-encoding"] == "gzip"
    assert served.headers["cache-control"] == "no-cache"
    again = await http.get(
        "/dashboard/vendor/uPlot.iife.min.js", headers={"If-None-Match": served.headers["etag"]}
    )
    assert again.status_code == 304


async def _demo_tenant(engine: AsyncEngine) -> None:
    if await tenant_by_slug(engine, DEMO_SLUG) is None:
        await create_tenant(engine, DEMO_SLUG, "Demo Tenant")


async def test_development_signs_a_local_browser_in_as_the_demo_tenant(
    http: AsyncClient, engine: AsyncEngine
) -> None:
    await _demo_tenant(engine)
    answer = await http.post("/dashboard/session", headers={"Host": "127.0.0.1:8000"})
    assert answer.status_code == 200 and answer.headers["cache-control"] == "no-store"
    token = answer.json()["token"]
    viewer = await http.post(
        "/graphql",
        json={"query": "{ viewer { role tenant { slug } } }"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert viewer.json()["data"] == {"viewer": {"role": "ADMIN", "tenant": {"slug": "demo"}}}


@pytest.mark.parametrize(
    ("client", "host"),
    [(("10.1.2.3", 5000), "127.0.0.1:8000"), (("127.0.0.1", 5000), "evil.example:8000")],
    ids=["another machine", "a rebound host name"],
)
async def test_the_demo_sign_in_is_refused_beyond_this_machine(
    app: Starlette, engine: AsyncEngine, client: tuple[str, int], host: str
) -> None:
    await _demo_tenant(engine)
    transport = ASGITransport(app=app, client=client)
    async with AsyncClient(transport=transport, base_url="http://test") as remote:
        answer = await remote.post("/dashboard/session", headers={"Host": host})
    assert answer.status_code == 404
    assert "token" not in answer.json()


async def test_production_has_no_demo_sign_in(
    settings: Settings, engine: AsyncEngine, tmp_path: Path
) -> None:
    await _demo_tenant(engine)
    async with another_app(settings, tmp_path, env=Environment.PRODUCTION) as application:
        transport = ASGITransport(app=application)
        async with AsyncClient(transport=transport, base_url="http://127.0.0.1") as local:
            answer = await local.post("/dashboard/session")
            page = await local.get("/")
    assert answer.status_code == 404 and "token" not in answer.json()
    assert page.status_code == 200  # the page itself asks for a token
