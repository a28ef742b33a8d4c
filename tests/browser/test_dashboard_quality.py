"""What a person cannot see but depends on: no accessibility violation axe-core rates serious
or critical, a small first load that needs nothing but the app, and a page that still
renders, saying what is missing, when a store is down."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from axe_playwright_python.async_playwright import Axe
from httpx import AsyncClient
from playwright.async_api import Browser, Page, Request, ViewportSize, expect
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from app.auth import Role
from app.settings import Settings
from app.stores.redis.embedded import EmbeddedRedis, start_embedded_redis
from tests.api.dashboard_data import dashboard_tenant
from tests.browser.conftest import PHONE, Dashboard, close, screenshot
from tests.processes import free_port
from tests.serving import served
from tests.support import another_app

FIRST_LOAD_BUDGET = 300 * 1024  # bytes on the wire, compressed, for everything a first load fetches
SERIOUS = {"serious", "critical"}


async def _violations(page: Page) -> list[dict[str, Any]]:
    results = await Axe().run(page)
    assert results.response["testEngine"]["name"] == "axe-core"  # it ran, on this page
    found: list[dict[str, Any]] = results.response["violations"]
    for violation in found:
        if violation["impact"] not in SERIOUS:
            print(f"axe, {violation['impact']}: {violation['id']}: {violation['help']}")
    return [v for v in found if v["impact"] in SERIOUS]


def _describe(violations: list[dict[str, Any]]) -> str:
    return "\n".join(
        f"{v['id']} ({v['impact']}): {v['help']} at "
        + ", ".join(str(node["target"]) for node in v["nodes"][:3])
        for v in violations
    )


@pytest.mark.parametrize("viewport", [None, PHONE], ids=["desktop", "phone"])
async def test_no_serious_accessibility_violation_in_any_view(
    app: Starlette,
    engine: AsyncEngine,
    http: AsyncClient,
    browser: Browser,
    dashboard: Dashboard,
    viewport: ViewportSize | None,
) -> None:
    tenant = await dashboard_tenant(app, engine, http, campaigns=3)
    page = await dashboard.open(browser, tenant.token(Role.ADMIN), viewport=viewport)
    try:
        checked: dict[str, list[dict[str, Any]]] = {}
        await page.wait_for_selector("#campaign-results[data-state='ready']")
        await page.get_by_text("Query and store plan of this view").click()
        checked["campaigns"] = await _violations(page)
        await page.get_by_role("link", name="Campaign 1").click()
        await page.wait_for_selector("#campaign-detail[data-state='ready']")
        checked["campaign"] = await _violations(page)
        await page.goto(f"{dashboard.url}/#/search?q=sneakers")
        await page.wait_for_selector("#search-results[data-state='ready']")
        checked["search"] = await _violations(page)
        await page.get_by_role("button", name="Sign out").click()
        await expect(page.get_by_label("Token or API key")).to_be_visible()
        checked["sign-in"] = await _violations(page)
        failing = {view: _describe(v) for view, v in checked.items() if v}
        assert failing == {}, failing
    finally:
        await close(page)


async def test_the_first_load_is_under_300_kb_compressed_and_comes_from_the_app_alone(
    app: Starlette, engine: AsyncEngine, http: AsyncClient, browser: Browser, dashboard: Dashboard
) -> None:
    tenant = await dashboard_tenant(app, engine, http, campaigns=3)
    context = await browser.new_context(base_url=dashboard.url)
    await context.add_init_script(f"sessionStorage.setItem('chimera.token', '{tenant.token()}')")
    page = await context.new_page()
    requests: list[Request] = []
    page.on("requestfinished", lambda request: requests.append(request))
    try:
        await page.goto(dashboard.url + "/")
        await page.wait_for_selector("#campaign-results[data-state='ready']")
        await page.wait_for_load_state("networkidle")
        transferred = 0
        hosts = set()
        for request in requests:
            sizes = await request.sizes()
            transferred += sizes["responseBodySize"] + sizes["responseHeadersSize"]
            hosts.add(request.url.split("/")[2])
            response = await request.response()
            assert response is not None and response.status < 400, request.url
        print(f"first load: {len(requests)} requests, {transferred / 1024:.1f} KiB transferred")
        assert hosts == {dashboard.url.removeprefix("http://")}
        assert transferred < FIRST_LOAD_BUDGET, f"{transferred} bytes"
    finally:
        await context.close()


@pytest_asyncio.fixture
async def redis_that_stops(tmp_path: Path) -> AsyncIterator[EmbeddedRedis]:
    server = start_embedded_redis(tmp_path / "redis")
    try:
        yield server
    finally:
        server.stop()


async def test_with_redis_down_the_counters_say_unavailable_and_the_rest_renders(
    app: Starlette,
    engine: AsyncEngine,
    http: AsyncClient,
    settings: Settings,
    browser: Browser,
    redis_that_stops: EmbeddedRedis,
    tmp_path: Path,
) -> None:
    tenant = await dashboard_tenant(app, engine, http, campaigns=2)
    port = free_port()
    async with (
        another_app(
            settings,
            tmp_path / "data",
            redis_url=f"redis://127.0.0.1:{redis_that_stops.port}/0",
            public_url=f"http://127.0.0.1:{port}",
            store_timeout_seconds=1.0,
        ) as application,
        served(application, port) as host,
    ):
        redis_that_stops.stop()
        page = await Dashboard(application, f"http://{host}").open(browser, tenant.token())
        try:
            results = page.locator("#campaign-results[data-state='ready']")
            rows = results.locator("table.campaigns tbody tr")
            await expect(rows).to_have_count(2, timeout=15_000)
            await expect(rows.first.locator("td.engagement")).to_have_text("unavailable")
            await expect(rows.first.locator("td.budget")).to_contain_text("$1.50 of $500.00")
            await expect(page.locator("#live")).not_to_have_text("Live")
            await screenshot(page, "redis-down")
        finally:
            await close(page)
