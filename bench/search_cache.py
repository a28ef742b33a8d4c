"""The shared caches' hit path: latency and CPU per request, cold against warm.

Run: ``.venv/bin/python bench/search_cache.py --database-url postgresql://...`` (``--help``).
One process: the app over ASGI on scratch databases, with the real model. Two requests:

- ``semanticSearch(query: ...)`` for campaigns: cold, each text searched for the first time
  (embedded by the model); warm, the same texts again (their vectors from Redis);
- a page of 50 campaigns with ``similar(limit: 3)``: cold, after the campaign vectors changed
  (the cache's generation bumped, as the indexer does); warm, the same page again.

Reported per request: median latency and CPU time (the process's, worker threads included,
so the model's work counts), measured one request at a time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.auth import Role
from app.stores.redis import keys
from bench.scratch_app import ScratchApp, scratch_app
from tests.indexing import index_everything

WORDS = [
    "trail",
    "road",
    "city",
    "summer",
    "winter",
    "eco",
    "bold",
    "calm",
    "bright",
    "quick",
    "loyal",
    "local",
    "global",
]
THINGS = [
    "shoes",
    "coffee",
    "laptops",
    "tickets",
    "snacks",
    "bikes",
    "tents",
    "books",
    "phones",
    "jackets",
]
PEOPLE = ["runners", "students", "parents", "gamers", "travellers", "chefs", "nurses", "founders"]


def texts(count: int, salt: str) -> list[str]:
    return [
        f"{WORDS[i % len(WORDS)]} {THINGS[i * 7 % len(THINGS)]} for {PEOPLE[i * 3 % len(PEOPLE)]} "
        f"{salt} {i}"
        for i in range(count)
    ]


async def timed(runs: int, one: Callable[[int], Awaitable[None]]) -> tuple[float, float]:
    """Median wall time and mean CPU time per request, in ms."""
    walls = []
    cpu_began = time.process_time()
    for i in range(runs):
        began = time.perf_counter()
        await one(i)
        walls.append(time.perf_counter() - began)
    cpu = (time.process_time() - cpu_began) / runs
    return sorted(walls)[len(walls) // 2] * 1000, cpu * 1000


async def measure(scratch: ScratchApp, runs: int) -> list[str]:
    editor = scratch.token(Role.EDITOR)
    for i, goal in enumerate(texts(60, "campaign")):
        await scratch.call(
            editor,
            "mutation($n: String!, $g: String!) { createCampaign(input: {name: $n, goal: $g}) "
            "{ campaign { id } } }",
            {"n": f"Campaign {i}", "g": goal},
        )
    await index_everything(scratch.app)
    search = (
        "query($q: String!) { semanticSearch(query: $q, types: [CAMPAIGN], limit: 5) { score } }"
    )
    queries = texts(runs, "search")

    async def search_one(i: int) -> None:
        await scratch.call(editor, search, {"q": queries[i]})

    cold_search = await timed(runs, search_one)
    warm_search = await timed(runs, search_one)
    page = "{ campaigns(first: 50) { edges { node { id similar(limit: 3) { score } } } } }"
    redis = scratch.app.state.stores.redis
    generation = keys.similar_generation(scratch.tenant_id)

    async def page_cold(_: int) -> None:
        await redis.incr(generation)  # what the indexer does after any campaign vector changes
        await scratch.call(editor, page)

    async def page_warm(_: int) -> None:
        await scratch.call(editor, page)

    cold_page = await timed(runs, page_cold)
    warm_page = await timed(runs, page_warm)
    rows = [
        ("semanticSearch (one text)", cold_search, warm_search),
        ("50 campaigns with similar(limit: 3)", cold_page, warm_page),
    ]
    lines = [
        "| request | cold p50 (ms) | warm p50 (ms) | cold CPU (ms) | warm CPU (ms) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, (cold_wall, cold_cpu), (warm_wall, warm_cpu) in rows:
        lines.append(
            f"| {name} | {cold_wall:.1f} | {warm_wall:.1f} | {cold_cpu:.1f} | {warm_cpu:.1f} |"
        )
    return lines


async def run(args: argparse.Namespace) -> list[str]:
    async with scratch_app(args.database_url, args.redis_url, relay_enabled=False) as scratch:
        await scratch.app.state.stores.redis.flushdb()
        return await measure(scratch, args.runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"), required=False)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--runs", type=int, default=100)
    args = parser.parse_args()
    if not args.database_url:
        parser.error("--database-url (or DATABASE_URL) is needed: a PostgreSQL server to use")
    for line in asyncio.run(run(args)):
        print(line)


if __name__ == "__main__":
    main()
