"""The dashboard in a real browser: the system's Chromium (Debian's `chromium` package) driven
by Playwright, which downloads nothing; the app served on loopback by uvicorn, its media
URLs pointing back at it so that the browser can load and upload them.

The browser resolves no host name but 127.0.0.1: a page that reached for a CDN would fail
here as it would on a machine without a network.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import (
    Browser,
    BrowserContext,
    Page,
    ViewportSize,
    async_playwright,
    expect,
)
from starlette.applications import Starlette

from app.settings import Settings
from tests.chromium import chromium_executable
from tests.processes import ROOT, free_port
from tests.serving import served
from tests.support import another_app

# Screenshots of each main view, kept after the run (CI prints where).
ARTIFACTS = ROOT / "build" / "test-artifacts" / "dashboard"
# Assertions wait this long for the page to get there: generous, so that a busy machine
# makes a test slower, not red (a passing assertion returns as soon as it holds).
expect.set_options(timeout=15_000)

DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}


@pytest_asyncio.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    executable = chromium_executable()
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=executable,
            args=[
                "--no-sandbox",
                "--disable-dev-shm-usage",
                "--disable-gpu",
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            ],
        )
        try:
            yield launched
        finally:
            await launched.close()


@dataclass
class Dashboard:
    app: Starlette
    url: str  # http://127.0.0.1:PORT

    async def open(
        self,
        browser: Browser,
        token: str | None,
        path: str = "/",
        viewport: ViewportSize | None = None,
    ) -> Page:
        """A new tab signed in with ``token`` (None: not signed in), at ``path``."""
        context = await browser.new_context(
            viewport=viewport or DESKTOP,
            base_url=self.url,
            locale="en-US",  # what the assertions read: "$1.50", "Dec 3, 2026"
            timezone_id="UTC",
        )
        if token is not None:
            await context.add_init_script(
                f"sessionStorage.setItem('chimera.token', {json.dumps(token)})"
            )
        page = await context.new_page()
        _record_failures(page)
        await page.goto(self.url + path)
        return page


def _record_failures(page: Page) -> None:
    """Script errors of the page, asserted empty by ``no_script_errors``."""
    failures: list[str] = []
    page.on("pageerror", lambda error: failures.append(f"{error}"))
    page.on(
        "console",
        lambda message: failures.append(message.text) if message.type == "error" else None,
    )
    page.failures = failures  # type: ignore[attr-defined]


def script_errors(page: Page) -> list[str]:
    return list(page.failures)  # type: ignore[attr-defined]


async def close(page: Page) -> None:
    context: BrowserContext = page.context
    await context.close()


async def screenshot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    await page.screenshot(path=path, full_page=True)
    return path


@pytest_asyncio.fixture(scope="session")
async def dashboard(
    app: Starlette, settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Dashboard]:
    """The dashboard's app on loopback, beside the session app (whose relay publishes the
    events this one's subscribers receive), its media URLs naming its own address."""
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    data_dir = tmp_path_factory.mktemp("dashboard-app")
    async with (
        another_app(settings, data_dir, public_url=public) as application,
        served(application, port),
    ):
        yield Dashboard(application, public)
