"""GraphiQL (GET /graphql in dev) works offline: the page and every file it loads come from the
app, pinned, and it renders in a real browser that can reach nothing but the app."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
from pathlib import Path

from httpx import AsyncClient

from app.graphiql import ASSETS_DIR, graphiql_routes
from app.settings import Settings
from tests.chromium import chromium_executable

PAGE = {"Accept": "text/html"}


def _assets_named(page: str) -> list[tuple[str, str]]:
    """(url, integrity) of every script and stylesheet the page loads."""
    return re.findall(r'(?:src|href)="([^"]+)"\s+integrity="([^"]+)"', page)


async def test_graphiql_page_loads_only_pinned_files_served_by_the_app(http: AsyncClient) -> None:
    response = await http.get("/graphql", headers=PAGE)
    assert response.status_code == 200
    page = response.text
    assert "unpkg.com" not in page and "cdn" not in page.lower()
    assert not re.search(r'(?:src|href)="(?:https?:)?//', page), "the page names another host"
    named = _assets_named(page)
    assert {url.rsplit("/", 1)[-1] for url, _ in named} == {
        "react.production.min.js",
        "react-dom.production.min.js",
        "graphiql.min.js",
        "graphiql.min.css",
        "plugin-explorer.umd.js",
        "plugin-explorer.css",
    }
    for url, integrity in named:
        asset = await http.get(url)
        assert asset.status_code == 200, url
        digest = base64.b64encode(hashlib.sha384(asset.content).digest()).decode()
        assert integrity == f"sha384-{digest}", f"{url} does not match its pinned hash"


def test_production_serves_no_graphiql_files() -> None:
    assert graphiql_routes(Settings(CHIMERA_ENV="production")) == []
    assert graphiql_routes(Settings(CHIMERA_ENV="dev")) != []


def test_vendored_files_are_the_pinned_releases() -> None:
    manifest = json.loads((ASSETS_DIR / "assets.json").read_text())
    for name, entry in manifest.items():
        digest = base64.b64encode(hashlib.sha384((ASSETS_DIR / name).read_bytes()).digest())
        assert entry["integrity"] == f"sha384-{digest.decode()}", name
        assert (ASSETS_DIR / entry["license_file"]).is_file(), entry["license_file"]


async def _chromium(browser: str, profile: Path, *args: str) -> str:
    """Headless Chromium that cannot resolve any host name (a CDN is unreachable, as on a
    machine without network) and reaches only 127.0.0.1."""
    process = await asyncio.create_subprocess_exec(
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        "--window-size=1280,800",
        # Timers and promises run on virtual time: React has rendered when the page is read.
        "--virtual-time-budget=15000",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=120)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode == 0, stderr.decode(errors="replace")[-2000:]
    return stdout.decode(errors="replace")


async def test_graphiql_renders_in_headless_chromium_without_a_network(
    live_url: str, tmp_path: Path
) -> None:
    browser = chromium_executable()
    url = f"http://{live_url}/graphql"
    dom = await _chromium(browser, tmp_path / "profile-dom", "--dump-dom", url)
    screenshot = tmp_path / "graphiql.png"
    await _chromium(browser, tmp_path / "profile-shot", f"--screenshot={screenshot}", url)

    assert "graphiql-query-editor" in dom, f"GraphiQL did not render:\n{dom[:2000]}"
    assert "CodeMirror" in dom  # the query editor itself
    assert ">Loading...<" not in dom
    assert screenshot.stat().st_size > 10_000  # a rendered page, not a blank one
