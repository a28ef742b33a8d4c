"""The dashboard's first render, as a newcomer gets it: `chimera serve` on the demo data,
the page opened in a fresh headless Chromium tab (empty cache) on loopback, timed from
navigation to the campaign list drawn with every store's numbers.

Run: ``.venv/bin/python bench/dashboard_page.py`` (``--loads N``, 30 by default; about a
minute plus the server's start). Prints, and with ``--write`` puts into docs/benchmarks.md
between its markers: the median and 95th percentile of time to the rendered list, the
browser's own timings (first contentful paint, the list's GraphQL request), and the bytes
transferred. Needs Chromium (Debian's `chromium`); only 127.0.0.1 is used.

Each load is a new browser context, so nothing is cached between loads: the cost of the
page's files is in every number. The server keeps its plan caches, as a served app does.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from playwright.async_api import Browser, Request, async_playwright  # noqa: E402

from bench.doc_blocks import replace_block  # noqa: E402
from tests.browser.conftest import DESKTOP  # noqa: E402
from tests.browser.demo_server import demo_server  # noqa: E402
from tests.chromium import chromium_executable  # noqa: E402

READY = "#campaign-results[data-state='ready']"


@dataclass
class Load:
    rendered_ms: float
    first_paint_ms: float
    list_request_ms: float
    transferred: int
    requests: int


async def _one(browser: Browser, base: str) -> Load:
    context = await browser.new_context(viewport=DESKTOP)
    page = await context.new_page()
    finished: list[Request] = []
    page.on("requestfinished", lambda request: finished.append(request))
    try:
        await page.goto(f"{base}/")
        await page.wait_for_selector(READY)
        rendered = float(await page.evaluate("performance.now()"))
        paint = float(
            await page.evaluate(
                "(performance.getEntriesByName('first-contentful-paint')[0] || {}).startTime || 0"
            )
        )
        listing = float(
            await page.evaluate(
                "Math.max(0, ...performance.getEntriesByType('resource')"
                ".filter(e => e.name.endsWith('/graphql')).map(e => e.duration))"
            )
        )
        await page.wait_for_load_state("networkidle")
        transferred = 0
        for request in finished:
            sizes = await request.sizes()
            transferred += sizes["responseBodySize"] + sizes["responseHeadersSize"]
        return Load(rendered, paint, listing, transferred, len(finished))
    finally:
        await context.close()


async def _measure(base: str, loads: int) -> list[Load]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium_executable(), args=["--no-sandbox"]
        )
        try:
            await _one(browser, base)  # the demo tenant signs in; the server warms its caches
            return [await _one(browser, base) for _ in range(loads)]
        finally:
            await browser.close()


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def report(results: list[Load]) -> str:
    rendered = [r.rendered_ms for r in results]
    paint = [r.first_paint_ms for r in results]
    listing = [r.list_request_ms for r in results]
    return "\n".join(
        [
            f"{len(results)} first loads of `/` (demo data, 6 campaigns; each a fresh browser "
            "context, nothing cached), headless Chromium on loopback:",
            "",
            "| | median | p95 |",
            "|---|---|---|",
            f"| campaign list rendered (navigation to table drawn) | "
            f"{statistics.median(rendered):.0f} ms | {_p95(rendered):.0f} ms |",
            f"| first contentful paint | {statistics.median(paint):.0f} ms | {_p95(paint):.0f} ms |",
            f"| the list's GraphQL request | {statistics.median(listing):.0f} ms | "
            f"{_p95(listing):.0f} ms |",
            "",
            f"Transferred on a first load: {statistics.median([r.transferred for r in results]) / 1024:.1f} KiB "
            f"in {results[0].requests} requests (budget: 300 KB compressed).",
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loads", type=int, default=30)
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    with demo_server() as base:
        results = asyncio.run(_measure(base, args.loads))
    text = report(results)
    print(text)
    if args.write:
        replace_block("dashboard-page", "The dashboard page", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
