"""`make screenshot`: the README's pictures of the dashboard, taken as a newcomer sees it.

Starts `chimera serve` on the embedded engines in a fresh data directory (demo data, the
dashboard signing in the demo tenant by itself), waits until the background work has
caught up (the daily engagement and the similar campaigns are there), and saves the
campaign list and one campaign's page, at 1280x800, under docs/images/.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import pytest
from playwright.async_api import Page, async_playwright

from tests.browser.conftest import DESKTOP
from tests.browser.demo_server import demo_server
from tests.chromium import chromium_executable
from tests.processes import ROOT

IMAGES = ROOT / "docs" / "images"


async def _until(page: Page, url: str, ready: str, caught_up: str) -> None:
    """Load ``url`` until the JavaScript condition ``caught_up`` holds (60 s at most)."""
    deadline = time.monotonic() + 60
    while True:
        await page.goto(url)
        await page.wait_for_selector(ready)
        if await page.evaluate(caught_up) or time.monotonic() > deadline:
            return
        await asyncio.sleep(1)


async def _shoot(base: str) -> list[Path]:
    IMAGES.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as playwright:
        try:
            executable = chromium_executable()
        except pytest.skip.Exception as missing:
            raise SystemExit(str(missing)) from None
        browser = await playwright.chromium.launch(
            executable_path=executable, args=["--no-sandbox"]
        )
        page = await browser.new_page(viewport=DESKTOP, locale="en-US", timezone_id="UTC")
        await _until(
            page,
            f"{base}/",
            "#campaign-results[data-state='ready']",
            "[...document.querySelectorAll('.spark')].every(s => !/: 0 in all/.test("
            "s.getAttribute('aria-label'))) || false",
        )
        listing = IMAGES / "dashboard.png"
        await page.screenshot(path=listing)
        href = await page.get_attribute("table.campaigns tbody th a", "href")
        await _until(
            page,
            f"{base}/{href}",
            "#campaign-detail[data-state='ready']",
            "document.querySelectorAll('.similar li').length > 0",
        )
        detail = IMAGES / "dashboard-campaign.png"
        await page.screenshot(path=detail)
        await browser.close()
    return [listing, detail]


def main() -> int:
    with demo_server() as base:
        for path in asyncio.run(_shoot(base)):
            print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
