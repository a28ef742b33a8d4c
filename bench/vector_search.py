"""pgvector top-10 search at 100k x 384 for tenants of every size: latency of
PgVectorIndex.search and recall@10 against exact search, before and after the change in
docs/decisions/0016, measured in the same run.

Run: ``.venv/bin/python bench/vector_search.py`` (``--help`` for the sizes and the
exploration flags). About 6 minutes on 2 shared cores, most of it loading rows and building
HNSW graphs.

It starts its own embedded PostgreSQL in a temporary directory (deleted at the end), or with
``--url`` uses an empty database of yours, opens the index with ``open_pgvector`` (so the
schema, the HNSW DDL and the search statements and settings are the adapter's own), and for
each layout of tenants:

1. empties ``vector_item`` and drops the HNSW index;
2. loads every tenant's rows through ``PgVectorIndex.upsert``, interleaved in small batches
   in random order as an indexer fed by many tenants would (timed: the load);
3. re-creates the HNSW index with the adapter's own ``CREATE INDEX`` statement from
   ``pgvector.SCHEMA`` (timed: the build), then VACUUM ANALYZE;
4. for each tenant whose share was asked for (``--shares``, percent of the rows):
   a. records which plan each code ran (EXPLAIN ANALYZE: the HNSW index, a sequential scan,
      or a tenant index);
   b. warms up, then times ``PgVectorIndex.search`` (top 10, one kind, the tenant filter) end
      to end in Python, one query at a time, and the previous adapter's statement and
      settings ("before", on a pool set up the way it set up its own), alternating which goes
      first; then the adapter alone from 4 concurrent clients for throughput;
   c. times both of the adapter's tenant-wide paths forced (exact ranking and the HNSW walk),
      which is how its exact-ranking cutoff was chosen;
   d. times owner-scoped searches and ``similar_to``, before and after;
   e. computes every exact top 10 with numpy, cross-checks the first queries' against SQL
      (a sequential scan ordered by cosine distance), and reports recall@10 = |approximate ids
      & exact ids| / 10, averaged.

Data (see docs/benchmarks.md): real all-MiniLM-L6-v2 embeddings of sentences generated from
templates and a vocabulary, blended and jittered to reach 100k distinct vectors; queries are
held-out sentences (never indexed) treated the same way. A last, labelled layout uses
uniform-random vectors on the sphere, the worst case (``--no-uniform`` skips it).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import math
import random
import re
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Run as a script, Python puts bench/ first on sys.path; the checkout's own app package must
# win over any installed copy, or this would time some other tree's code.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg
import numpy as np
from numpy.typing import NDArray
from pgvector import Vector
from pgvector.asyncpg import register_vector
from sqlalchemy import event, text
from sqlalchemy.engine import make_url

from app.stores.embeddings.minilm import load_minilm
from app.stores.postgres.embedded import ensure_database, start_embedded_postgres
from app.stores.postgres.engine import create_engine
from app.stores.vectors import pgvector as adapter
from app.stores.vectors.pgvector import PgVectorIndex, executed_indexes, open_pgvector
from app.stores.vectors.port import DIMENSIONS, VectorHit, VectorKind, VectorQuery, VectorRecord

F32 = NDArray[np.float32]

K = 10
KIND = VectorKind.MEMORY
DATABASE = "vector_bench"
# The adapter's own DDL for the graph: whatever m and ef_construction pgvector.py says.
ADAPTER_DDL = next(statement for statement in adapter.SCHEMA if "USING hnsw" in statement)
# Enough for a 100k x 384 graph to be built in memory (about 200 MB): pgvector builds much
# faster when the graph fits in maintenance_work_mem, and the server's default is 64 MB.
BUILD_MEMORY = "1GB"
# Blending (see blend): how much of a second sentence, and how much noise.
MIX_MAX = 0.5
NOISE = 0.25
# Tenants that fill a layout up to 100% hold at most this share each (percent): many small
# tenants, as in a shared deployment, rather than one big neighbour.
FILLER_SHARE = 1.0
# Rows per owner (an agent's memories, a campaign's media), for the owner-scoped searches.
ROWS_PER_OWNER = 50

# The adapter's statements and settings as of commit 25315b2, before docs/decisions/0016: one
# template for tenant-wide and owner-scoped searches ("+ 0" for the latter), with a catch-all
# owner predicate; ef_search and iterative scans set once per connection (so no round trip per
# search for them), on a pool of the same size as the adapter's.
BEFORE_SETTINGS = "SET hnsw.ef_search = 100; SET hnsw.iterative_scan = relaxed_order"
BEFORE_SEARCH = """
SELECT q.ord, h.kind, h.row_id, h.score
FROM unnest(CAST(:vectors AS vector[]), CAST(:excludes AS uuid[]), CAST(:owners AS uuid[]))
     WITH ORDINALITY AS q(v, ex, owner, ord)
CROSS JOIN LATERAL (
    SELECT kind, row_id, 1 - (embedding <=> q.v) AS score
    FROM vector_item
    WHERE tenant_id = :tenant AND kind = ANY(:kinds)
      AND (q.owner IS NULL OR owner_id = q.owner)
      AND (q.ex IS NULL OR row_id <> q.ex)
    ORDER BY (embedding <=> q.v) {exact}
    LIMIT :limit
) h
"""
BEFORE_SIMILAR = """
SELECT s.row_id AS source, h.kind, h.row_id, h.score
FROM vector_item s
CROSS JOIN LATERAL (
    SELECT kind, row_id, 1 - (embedding <=> s.embedding) AS score
    FROM vector_item
    WHERE tenant_id = :tenant AND kind = ANY(:kinds) AND row_id <> s.row_id
    ORDER BY embedding <=> s.embedding
    LIMIT :limit
) h
WHERE s.tenant_id = :tenant AND s.kind = :kind AND s.row_id = ANY(:rows)
"""

EXACT = """
SELECT row_id, embedding <=> $3 AS distance
FROM vector_item
WHERE tenant_id = $1 AND kind = $2
ORDER BY embedding <=> $3
LIMIT $4
"""

# Sentences shaped like the project's indexed texts: campaign briefs, agent memories, media
# captions and reports. Every slot is filled in every template's format call; unused ones
# are ignored by str.format.
PRODUCTS = [
    "recycled denim jackets",
    "noise-cancelling headphones",
    "plant-based protein bars",
    "electric cargo bikes",
    "cloud backup plans",
    "organic coffee beans",
    "trail running shoes",
    "smart thermostats",
    "kids' science kits",
    "vegan skincare",
    "budget city breaks",
    "a home workout app",
    "a craft beer subscription",
    "refurbished smartphones",
    "solar garden lights",
    "an online Spanish course",
    "pet insurance",
    "winter tyres",
    "yoga mats",
    "meal kit delivery",
    "gaming laptops",
    "handmade ceramics",
    "cybersecurity training",
    "electric toothbrushes",
    "wedding photography",
    "concert tickets",
    "mortgage advice",
    "reusable water bottles",
    "board games",
    "hiking backpacks",
]
AUDIENCES = [
    "students",
    "young parents",
    "small business owners",
    "retirees",
    "gamers",
    "IT managers",
    "first-time buyers",
    "remote workers",
    "fitness fans",
    "pet owners",
    "commuters",
    "teachers",
    "music lovers",
    "travellers",
    "nurses",
]
PLACES = [
    "Berlin",
    "Lisbon",
    "London",
    "Madrid",
    "Paris",
    "Warsaw",
    "Dublin",
    "Milan",
    "Vienna",
    "Prague",
    "Amsterdam",
    "Stockholm",
    "rural areas",
    "the suburbs",
    "university towns",
]
CHANNELS = ["Instagram", "TikTok", "email", "YouTube", "LinkedIn", "podcast", "billboard"]
TIMES = [
    "this spring",
    "before Black Friday",
    "over the summer holidays",
    "in January",
    "next quarter",
    "on weekends",
    "during the back-to-school season",
    "around Christmas",
    "this month",
    "after the product launch",
]
ACTIONS = [
    "Launch a campaign",
    "Run a discount promotion",
    "Plan a giveaway",
    "Test new ad creatives",
    "Start a referral programme",
    "Book influencer partnerships",
    "Write a blog series",
    "Set up retargeting ads",
]
EVENTS = [
    "trade fair",
    "pop-up store",
    "street festival",
    "webinar",
    "charity run",
    "store opening",
    "product demo",
    "farmers market",
]
OUTCOMES = [
    "above target",
    "well below plan",
    "flat",
    "up sharply",
    "down slightly",
    "in line with forecasts",
]
AGENTS = [
    "The copywriter agent",
    "The social media agent",
    "The analytics agent",
    "The sales agent",
    "The design agent",
    "The community agent",
]
TEMPLATES = [
    "{action} for {product} aimed at {audience} in {place}",
    "{audience} in {place} responded well to the {channel} post about {product}",
    "Remember that {audience} prefer {channel} content about {product} {time}",
    "Draft a {channel} caption announcing {product} {time}",
    "Photo of {product} at a {event} in {place}",
    "Budget review: {channel} spend on {product} {time} was {outcome}",
    "{agent} should follow up with {audience} about {product} after the {event}",
    "Weekly report: {product} engagement on {channel} {outcome} {time}",
]
SLOTS = {
    "product": PRODUCTS,
    "audience": AUDIENCES,
    "place": PLACES,
    "channel": CHANNELS,
    "time": TIMES,
    "action": ACTIONS,
    "event": EVENTS,
    "outcome": OUTCOMES,
    "agent": AGENTS,
}


def hnsw_ddl(m: int | None, ef_construction: int | None) -> str:
    """The adapter's CREATE INDEX, or (for exploring, with --m / --ef-construction) the same
    statement with those build options replaced."""
    if m is None and ef_construction is None:
        return ADAPTER_DDL
    found = re.search(r"WITH\s*\((.*)\)", ADAPTER_DDL)
    options = dict(re.findall(r"(\w+)\s*=\s*(\d+)", found.group(1))) if found else {}
    options.setdefault("m", "16")
    options.setdefault("ef_construction", "64")
    if m is not None:
        options["m"] = str(m)
    if ef_construction is not None:
        options["ef_construction"] = str(ef_construction)
    listed = ", ".join(f"{key} = {value}" for key, value in options.items())
    return f"{ADAPTER_DDL[: found.start()] if found else ADAPTER_DDL} WITH ({listed})"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def generate_sentences(count: int, rng: random.Random) -> list[str]:
    """``count`` distinct sentences: a random template with every slot drawn at random."""
    found: list[str] = []
    seen: set[str] = set()
    while len(found) < count:
        template = rng.choice(TEMPLATES)
        sentence = template.format(**{slot: rng.choice(words) for slot, words in SLOTS.items()})
        sentence = sentence[0].upper() + sentence[1:]
        if sentence not in seen:
            seen.add(sentence)
            found.append(sentence)
    return found


def normalise(x: F32) -> F32:
    out: F32 = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    return out


def blend(
    bases: F32, partners: F32, rng: np.random.Generator, count: int | None = None
) -> tuple[F32, NDArray[np.int64]]:
    """Vectors normalise(e_a + b * e_p + NOISE * g): e_a a row of ``bases`` (uniformly drawn,
    ``count`` times; or every row once, in order, when ``count`` is None), e_p a uniformly drawn
    row of ``partners``, b ~ U(0, MIX_MAX) and g ~ N(0, I/384), of unit expected length.
    Returns the vectors and each one's row a."""
    a = np.arange(len(bases)) if count is None else rng.integers(0, len(bases), count)
    n = len(a)
    p = rng.integers(0, len(partners), n)
    mix = rng.uniform(0.0, MIX_MAX, (n, 1)).astype(np.float32)
    noise = rng.standard_normal((n, DIMENSIONS), dtype=np.float32)
    noise *= np.float32(NOISE / np.sqrt(DIMENSIONS))
    return normalise(bases[a] + mix * partners[p] + noise), a


def uniform(count: int, rng: np.random.Generator) -> F32:
    """Uniformly distributed on the unit sphere: normalised standard normal vectors."""
    return normalise(rng.standard_normal((count, DIMENSIONS), dtype=np.float32))


@dataclass
class Tenant:
    id: uuid.UUID
    row_ids: list[uuid.UUID]
    owners: list[uuid.UUID | None]  # the owner of each row, if it has one
    vectors: F32
    texts: list[str]
    share: float  # percent of the layout's rows
    measured: bool


def make_tenant(
    vectors: F32, texts: list[str], seed: int, share: float, *, measured: bool, owned: float
) -> Tenant:
    """A tenant's rows: a fraction ``owned`` of them belong to owners of about ROWS_PER_OWNER
    rows each (an agent's memories), the others to no one (campaigns, agents)."""
    ids_rng = random.Random(seed)

    def new_id() -> uuid.UUID:
        return uuid.UUID(int=ids_rng.getrandbits(128), version=4)

    row_ids = [new_id() for _ in range(len(vectors))]
    owner_ids = [new_id() for _ in range(max(1, round(len(vectors) * owned / ROWS_PER_OWNER)))]
    owners = [
        ids_rng.choice(owner_ids) if ids_rng.random() < owned else None for _ in range(len(vectors))
    ]
    return Tenant(new_id(), row_ids, owners, vectors, texts, share, measured)


def pack(shares: Sequence[float]) -> list[list[float]]:
    """Shares (percent) grouped into as few layouts of at most 100% as first fit allows, so
    that each load of the index serves several measured tenants."""
    layouts: list[list[float]] = []
    for share in sorted(shares, reverse=True):
        for layout in layouts:
            if sum(layout) + share <= 100.0 + 1e-9:
                layout.append(share)
                break
        else:
            layouts.append([share])
    return layouts


def layout_tenants(
    shares: list[float],
    rows: int,
    source: Callable[[int], tuple[F32, list[str]]],
    seed: int,
    owned: float,
) -> list[Tenant]:
    """The measured tenants of one layout, then filler tenants of at most FILLER_SHARE each
    up to ``rows`` rows in all."""
    sizes = [(share, max(1, round(rows * share / 100)), True) for share in shares]
    left = rows - sum(size for _, size, _ in sizes)
    chunk = max(1, round(rows * FILLER_SHARE / 100))
    while left > 0:
        size = min(chunk, left)
        sizes.append((100 * size / rows, size, False))
        left -= size
    tenants = []
    for i, (share, size, measured) in enumerate(sizes):
        vectors, texts = source(size)
        tenants.append(make_tenant(vectors, texts, seed + i, share, measured=measured, owned=owned))
    return tenants


@dataclass
class Load:
    label: str
    rows: int
    tenants: int
    load_s: float
    build_s: float
    table_mb: float
    index_mb: float
    spilled: bool


@dataclass
class Timed:
    """One code's searches over the same queries: latencies, and the ids each found."""

    latencies: list[float] = field(default_factory=list)
    found: list[list[uuid.UUID]] = field(default_factory=list)

    def add(self, seconds: float, hits: Sequence[VectorHit]) -> None:
        self.latencies.append(seconds)
        self.found.append([hit.row_id for hit in hits])

    def percentile(self, q: float) -> float:
        return float(np.percentile(np.array(self.latencies) * 1000.0, q))

    def recalls(self, truth: Sequence[set[uuid.UUID]]) -> list[float]:
        return [
            len(set(ids) & exact) / max(1, len(exact))
            for ids, exact in zip(self.found, truth, strict=True)
        ]

    def recall(self, truth: Sequence[set[uuid.UUID]]) -> float:
        return float(np.mean(self.recalls(truth)))

    def short(self, wanted: int) -> int:
        return sum(1 for ids in self.found if len(ids) < wanted)


@dataclass
class Result:
    data: str
    tenant_rows: int
    share: float
    code: str  # "before" or "after"
    plan: str
    recall: float
    poor: int
    short: int
    queries: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    qps: float
    qps_concurrent: float | None


@dataclass
class Paths:
    data: str
    tenant_rows: int
    share: float
    cutoff: int
    chosen: str
    exact_p50: float
    exact_recall: float
    graph_p50: float
    graph_recall: float
    graph_short: int


@dataclass
class Side:
    data: str
    tenant_rows: int
    share: float
    owned_before: tuple[float, float]  # p50 ms, recall
    owned_after: tuple[float, float]
    owned_plans: tuple[str, str]
    similar_before: tuple[float, float]
    similar_after: tuple[float, float]


async def reset(admin: asyncpg.Connection) -> None:
    await admin.execute("TRUNCATE vector_item")
    await admin.execute(f"DROP INDEX IF EXISTS {adapter.HNSW_INDEX}")


def records(tenant: Tenant, at: int, count: int) -> list[VectorRecord]:
    return [
        VectorRecord(
            kind=KIND,
            row_id=tenant.row_ids[i],
            vector=tenant.vectors[i].tolist(),
            text=tenant.texts[i],
            owner_id=tenant.owners[i],
            content_hash=f"{i:016x}",
        )
        for i in range(at, min(at + count, len(tenant.vectors)))
    ]


async def load(
    label: str,
    index: PgVectorIndex,
    admin: asyncpg.Connection,
    tenants: Sequence[Tenant],
    batch: int,
    ddl: str,
    seed: int,
) -> Load:
    await reset(admin)
    chunks = [(t, at) for t in tenants for at in range(0, len(t.vectors), batch)]
    random.Random(seed).shuffle(chunks)
    rows = sum(len(t.vectors) for t in tenants)
    started = time.perf_counter()
    done, next_report = 0, 20_000
    for tenant, at in chunks:
        chunk = records(tenant, at, batch)
        await index.upsert(tenant.id, chunk)
        done += len(chunk)
        if done >= next_report:
            rate = done / (time.perf_counter() - started)
            log(f"  {done:,} of {rows:,} rows upserted ({rate:,.0f} rows/s)")
            next_report += 20_000
    load_s = time.perf_counter() - started
    notices: list[str] = []

    def on_notice(_conn: Any, message: Any) -> None:
        notices.append(str(message))

    admin.add_log_listener(on_notice)
    await admin.execute(f"SET maintenance_work_mem = '{BUILD_MEMORY}'")
    log("  building the HNSW index with the adapter's DDL")
    started = time.perf_counter()
    await admin.execute(ddl)
    build_s = time.perf_counter() - started
    admin.remove_log_listener(on_notice)
    await admin.execute("RESET maintenance_work_mem")
    # What autovacuum does for an insert-mostly table: statistics, reltuples (the adapter's
    # exact-ranking cutoff reads it) and the visibility map (index-only counts).
    await admin.execute("VACUUM ANALYZE vector_item")
    table = await admin.fetchval("SELECT pg_table_size('vector_item')")
    size = await admin.fetchval(f"SELECT pg_relation_size('{adapter.HNSW_INDEX}')")
    log(f"  loaded {rows:,} rows in {load_s:.1f} s, built the index in {build_s:.1f} s")
    return Load(
        label=label,
        rows=rows,
        tenants=len(tenants),
        load_s=load_s,
        build_s=build_s,
        table_mb=int(table) / 1e6,
        index_mb=int(size) / 1e6,
        spilled=any("no longer fits" in n for n in notices),
    )


def describe(plan: dict[str, Any]) -> str:
    """What a plan read vector_item with, among the nodes that ran."""
    used = executed_indexes(plan)
    if adapter.HNSW_INDEX in used:
        return "HNSW"

    def scans(node: dict[str, Any]) -> list[str]:
        found = []
        if node.get("Actual Loops", 1) and node.get("Relation Name") == "vector_item":
            found.append(str(node["Node Type"]))
        for child in node.get("Plans", []):
            found.extend(scans(child))
        return found

    kinds = scans(plan)
    if "Seq Scan" in kinds:
        return "seq scan"
    return "exact (tenant/owner index)" if kinds else "?"


def estimate(plan: dict[str, Any]) -> str:
    """The planner's row estimate against the actual count for the first node that read
    vector_item and ran: why a plan was chosen."""
    if plan.get("Actual Loops", 1) and plan.get("Relation Name") == "vector_item":
        return f"estimated {plan['Plan Rows']:,.0f} rows, read {plan['Actual Rows']:,.0f}"
    for child in plan.get("Plans", []):
        found = estimate(child)
        if found:
            return found
    return ""


def exact_top(
    vectors: F32, row_ids: Sequence[uuid.UUID], queries: F32, k: int = K
) -> list[set[uuid.UUID]]:
    """The exact top ``k`` of every query among ``vectors`` (unit length: cosine = dot)."""
    found: list[set[uuid.UUID]] = []
    for at in range(0, len(queries), 100):
        scores = queries[at : at + 100] @ vectors.T
        kk = min(k, vectors.shape[0])
        top = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
        found.extend({row_ids[int(i)] for i in row} for row in top)
    return found


class Before:
    """The previous adapter's statements, on a pool set up the way it set up its own."""

    def __init__(self, url: str) -> None:
        self.engine = create_engine(url, timeout=600, pool_size=5)

        @event.listens_for(self.engine.sync_engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.run_async(register_vector)
            dbapi_connection.run_async(lambda conn: conn.execute(BEFORE_SETTINGS))

    async def _rows(self, statement: str, params: dict[str, Any]) -> list[Any]:
        async with self.engine.begin() as conn:
            return list(await conn.execute(text(statement), params))

    def _search(self, tenant: uuid.UUID, query: VectorQuery) -> tuple[str, dict[str, Any]]:
        params = {
            "vectors": [Vector(list(query.vector))],
            "excludes": [query.exclude_row_id],
            "owners": [query.owner_id],
            "tenant": tenant,
            "kinds": [k.value for k in query.kinds],
            "limit": query.limit,
        }
        return BEFORE_SEARCH.format(exact="+ 0" if query.owner_id else ""), params

    async def search(self, tenant: uuid.UUID, query: VectorQuery) -> list[VectorHit]:
        rows = await self._rows(*self._search(tenant, query))
        hits = [VectorHit(VectorKind(r.kind), r.row_id, float(r.score)) for r in rows]
        return sorted(hits, key=lambda hit: hit.score, reverse=True)

    async def explain(self, tenant: uuid.UUID, query: VectorQuery) -> dict[str, Any]:
        statement, params = self._search(tenant, query)
        rows = await self._rows("EXPLAIN (ANALYZE, FORMAT JSON) " + statement, params)
        plan: dict[str, Any] = rows[0][0][0]["Plan"]
        return plan

    async def similar_to(self, tenant: uuid.UUID, row: uuid.UUID) -> list[VectorHit]:
        params = {"tenant": tenant, "kind": KIND.value, "rows": [row], "kinds": [KIND.value]}
        rows = await self._rows(BEFORE_SIMILAR, params | {"limit": K})
        hits = [VectorHit(VectorKind(r.kind), r.row_id, float(r.score)) for r in rows]
        return sorted(hits, key=lambda hit: hit.score, reverse=True)


async def forced(
    index: PgVectorIndex, statement: str, tenant: uuid.UUID, vector: list[float]
) -> list[VectorHit]:
    """One of the adapter's two tenant-wide paths, whatever its cutoff would pick."""
    params = {
        "vectors": [Vector(vector)],
        "excludes": [None],
        "tenant": tenant,
        "kinds": [KIND.value],
        "fetch": K * adapter.CANDIDATES,
    }
    async with index.reads.connect() as conn:
        rows = list(await conn.execute(text(statement), params))
    hits = [VectorHit(VectorKind(r.kind), r.row_id, float(r.score)) for r in rows]
    return sorted(hits, key=lambda hit: hit.score, reverse=True)[:K]


async def timed_pair(
    requests: Sequence[Any],
    after: Callable[[Any], Awaitable[Sequence[VectorHit]]],
    before: Callable[[Any], Awaitable[Sequence[VectorHit]]] | None,
) -> tuple[Timed, Timed | None]:
    """Each request through both codes, alternating which goes first, so that the machine's
    load falls on both alike."""
    a, b = Timed(), Timed() if before else None
    for i, request in enumerate(requests):
        order = [(after, a), (before, b)] if i % 2 == 0 else [(before, b), (after, a)]
        for call, into in order:
            if call is None or into is None:
                continue
            t0 = time.perf_counter()
            hits = await call(request)
            into.add(time.perf_counter() - t0, hits)
    return a, b


async def cutoff(admin: asyncpg.Connection) -> int:
    """The adapter's exact-ranking cutoff for top K, from the same reltuples it reads."""
    reltuples = await admin.fetchval(
        "SELECT reltuples FROM pg_class WHERE oid = 'vector_item'::regclass"
    )
    fetch = K * adapter.CANDIDATES
    return max(
        adapter.EXACT_FLOOR, int(math.sqrt(adapter.EXACT_BALANCE * fetch * max(reltuples, 0)))
    )


async def measure(
    data: str,
    index: PgVectorIndex,
    before: Before | None,
    admin: asyncpg.Connection,
    tenant: Tenant,
    queries: F32,
    warmup: F32,
    args: argparse.Namespace,
) -> tuple[list[Result], Paths | None, Side | None]:
    n = len(tenant.vectors)
    label = f"{data}, tenant with {n:,} rows ({tenant.share:g}%)"

    def query(vector: list[float], owner: uuid.UUID | None = None) -> VectorQuery:
        return VectorQuery(vector=vector, kinds=(KIND,), limit=K, owner_id=owner)

    query_lists: list[list[float]] = queries.tolist()
    after_plan = describe(await index.explain(tenant.id, query(query_lists[0])))
    before_plan = ""
    if before:
        explained = await before.explain(tenant.id, query(query_lists[0]))
        before_plan = describe(explained)
        log(f"  {label}, before: {before_plan}, {estimate(explained)} (first query)")
    for vector in warmup.tolist():
        await index.search(tenant.id, query(vector))
        if before:
            await before.search(tenant.id, query(vector))

    requests = [query(v) for v in query_lists]
    started = time.perf_counter()
    a, b = await timed_pair(
        requests,
        lambda r: index.search(tenant.id, r),
        (lambda r: before.search(tenant.id, r)) if before else None,
    )
    wall = time.perf_counter() - started
    pending = iter(requests)

    async def client() -> None:
        for request in pending:
            await index.search(tenant.id, request)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(4)))
    qps_concurrent = len(requests) / (time.perf_counter() - started)

    truth = exact_top(tenant.vectors, tenant.row_ids, queries)
    await check_sql_exact(admin, tenant, queries[: args.exact_check], truth)

    def result(code: str, timed: Timed, plan: str, qps: float, concurrent: float | None) -> Result:
        recalls = timed.recalls(truth)
        return Result(
            data=data,
            tenant_rows=n,
            share=tenant.share,
            code=code,
            plan=plan,
            recall=float(np.mean(recalls)),
            poor=sum(1 for r in recalls if r < 0.5),
            short=timed.short(min(K, n)),
            queries=len(recalls),
            p50_ms=timed.percentile(50),
            p95_ms=timed.percentile(95),
            p99_ms=timed.percentile(99),
            qps=qps,
            qps_concurrent=concurrent,
        )

    # Each code's share of the alternating loop's wall time, for its single-client rate.
    spent_a, spent_b = sum(a.latencies), sum(b.latencies) if b else 0.0
    scale = wall / (spent_a + spent_b)
    results = []
    if b is not None:
        results.append(result("before", b, before_plan, len(requests) / (spent_b * scale), None))
    results.append(
        result("after", a, after_plan, len(requests) / (spent_a * scale), qps_concurrent)
    )
    for r in results:
        log(
            f"  {label}, {r.code}: {r.plan}, recall@10 {r.recall:.3f}, p50 {r.p50_ms:.2f} ms, "
            f"p99 {r.p99_ms:.2f} ms"
        )

    paths = None
    if args.path_queries:
        few = query_lists[: args.path_queries]
        exact_t, graph_t = Timed(), Timed()
        for i, vector in enumerate(few):
            order = [(adapter.SEARCH_EXACT, exact_t), (adapter.SEARCH_GRAPH, graph_t)]
            for statement, into in order if i % 2 == 0 else reversed(order):
                t0 = time.perf_counter()
                hits = await forced(index, statement, tenant.id, vector)
                into.add(time.perf_counter() - t0, hits)
        few_truth = truth[: len(few)]
        paths = Paths(
            data=data,
            tenant_rows=n,
            share=tenant.share,
            cutoff=await cutoff(admin),
            chosen=after_plan,
            exact_p50=exact_t.percentile(50),
            exact_recall=exact_t.recall(few_truth),
            graph_p50=graph_t.percentile(50),
            graph_recall=graph_t.recall(few_truth),
            graph_short=graph_t.short(min(K, n)),
        )
        log(
            f"  {label}, paths forced: exact {paths.exact_p50:.2f} ms, "
            f"HNSW {paths.graph_p50:.2f} ms (recall {paths.graph_recall:.3f})"
        )

    side = None
    if args.side_queries and any(owner is not None for owner in tenant.owners):
        side = await measure_side(data, index, before, tenant, queries, args.side_queries)
    return results, paths, side


async def measure_side(
    data: str,
    index: PgVectorIndex,
    before: Before | None,
    tenant: Tenant,
    queries: F32,
    count: int,
) -> Side:
    """Owner-scoped searches (a random owner of the tenant each) and similar_to (a random row
    of the tenant each), before and after."""
    rng = random.Random(len(tenant.vectors))
    owners = sorted({owner for owner in tenant.owners if owner is not None})
    picked = [rng.choice(owners) for _ in range(count)]
    vectors: list[list[float]] = queries[:count].tolist()
    owned = [
        VectorQuery(vector=v, kinds=(KIND,), limit=K, owner_id=o)
        for v, o in zip(vectors, picked, strict=True)
    ]
    by_owner: dict[uuid.UUID | None, list[int]] = {}
    for i, owner in enumerate(tenant.owners):
        by_owner.setdefault(owner, []).append(i)
    owned_truth = [
        exact_top(
            tenant.vectors[by_owner[o]],
            [tenant.row_ids[i] for i in by_owner[o]],
            queries[i : i + 1],
        )[0]
        for i, o in enumerate(picked)
    ]
    oa, ob = await timed_pair(
        owned,
        lambda q: index.search(tenant.id, q),
        (lambda q: before.search(tenant.id, q)) if before else None,
    )
    owned_plans = (
        describe(await before.explain(tenant.id, owned[0])) if before else "",
        describe(await index.explain(tenant.id, owned[0])),
    )

    sources = [rng.randrange(len(tenant.vectors)) for _ in range(count)]
    similar_truth = []
    for s in sources:
        scores = tenant.vectors @ tenant.vectors[s]
        scores[s] = -np.inf
        kk = min(K, len(scores) - 1)
        similar_truth.append({tenant.row_ids[int(i)] for i in np.argpartition(-scores, kk)[:kk]})

    async def similar_after(s: int) -> list[VectorHit]:
        found = await index.similar_to(tenant.id, KIND, [tenant.row_ids[s]], (KIND,), K)
        return found.get(tenant.row_ids[s], [])

    sa, sb = await timed_pair(
        sources,
        similar_after,
        (lambda s: before.similar_to(tenant.id, tenant.row_ids[s])) if before else None,
    )

    def pair(timed: Timed | None, truth: list[set[uuid.UUID]]) -> tuple[float, float]:
        return (timed.percentile(50), timed.recall(truth)) if timed else (math.nan, math.nan)

    side = Side(
        data=data,
        tenant_rows=len(tenant.vectors),
        share=tenant.share,
        owned_before=pair(ob, owned_truth),
        owned_after=pair(oa, owned_truth),
        owned_plans=owned_plans,
        similar_before=pair(sb, similar_truth),
        similar_after=pair(sa, similar_truth),
    )
    log(
        f"  owner-scoped p50 {side.owned_before[0]:.2f} -> {side.owned_after[0]:.2f} ms, "
        f"similar_to p50 {side.similar_before[0]:.2f} -> {side.similar_after[0]:.2f} ms"
    )
    return side


async def check_sql_exact(
    admin: asyncpg.Connection, tenant: Tenant, queries: F32, truth: list[set[uuid.UUID]]
) -> None:
    """numpy's exact top 10 against PostgreSQL's (a sequential scan, no index): the ground
    truth must not depend on float32 rounding in one of them."""
    if not len(queries):
        return
    async with admin.transaction():
        await admin.execute("SET LOCAL enable_indexscan = off")
        await admin.execute("SET LOCAL enable_bitmapscan = off")
        plan = await admin.fetch("EXPLAIN " + EXACT, tenant.id, KIND.value, queries[0], K)
        if any(adapter.HNSW_INDEX in str(row[0]) for row in plan):
            raise RuntimeError("the exact search would use the HNSW index")
        agreement = []
        for vector, expected in zip(queries, truth, strict=False):
            rows = await admin.fetch(EXACT, tenant.id, KIND.value, vector, K)
            found = {row["row_id"] for row in rows}
            agreement.append(len(found & expected) / max(1, len(expected)))
    mean = float(np.mean(agreement))
    if mean < 0.99:
        raise RuntimeError(f"numpy and SQL disagree on the exact top 10: {mean:.4f}")


async def settings(admin: asyncpg.Connection, ddl: str) -> dict[str, str]:
    found = dict(re.findall(r"(\w+)\s*=\s*(\d+)", ddl))
    ef_search = re.search(r"hnsw\.ef_search = (\d+)", adapter.SESSION_SETTINGS)
    return {
        "m": found.get("m", "16 (default)"),
        "ef_construction": found.get("ef_construction", "64 (default)"),
        "hnsw.ef_search": ef_search.group(1) if ef_search else "?",
        "hnsw.iterative_scan": "relaxed_order",
        "hnsw.max_scan_tuples": str(await admin.fetchval("SHOW hnsw.max_scan_tuples")),
        "candidates per hit (HNSW path)": str(adapter.CANDIDATES),
        "exact-ranking cutoff": (
            f"max({adapter.EXACT_FLOOR}, sqrt({adapter.EXACT_BALANCE} x fetch x rows))"
        ),
        "server": str(await admin.fetchval("SHOW server_version")),
        "pgvector": str(
            await admin.fetchval("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        ),
        "shared_buffers": str(await admin.fetchval("SHOW shared_buffers")),
        "build maintenance_work_mem": BUILD_MEMORY,
    }


def ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.2f} ms"


def print_report(
    results: list[Result],
    paths: list[Paths],
    sides: list[Side],
    loads: list[Load],
    extra: dict[str, str],
) -> None:
    print()
    print("Tenant-wide search, top 10:")
    print()
    print(
        "| data | tenant's rows | share | code | plan | recall@10 | queries under 0.5 "
        "| fewer than 10 hits | p50 | p95 | p99 | QPS, 1 client | QPS, 4 clients |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        concurrent = f"{r.qps_concurrent:,.0f}" if r.qps_concurrent is not None else "-"
        print(
            f"| {r.data} | {r.tenant_rows:,} | {r.share:g}% | {r.code} | {r.plan} "
            f"| {r.recall:.3f} | {r.poor} of {r.queries} | {r.short} | {r.p50_ms:.2f} ms "
            f"| {r.p95_ms:.2f} ms | {r.p99_ms:.2f} ms | {r.qps:,.0f} | {concurrent} |"
        )
    pairs = [
        (b, a) for b, a in itertools.pairwise(results) if b.code == "before" and a.code == "after"
    ]
    if pairs:
        print()
        print("| data | share | p50 before | p50 after | after / before | recall before -> after |")
        print("| --- | --- | --- | --- | --- | --- |")
        for b, a in pairs:
            print(
                f"| {a.data} | {a.share:g}% | {b.p50_ms:.2f} ms | {a.p50_ms:.2f} ms "
                f"| {a.p50_ms / b.p50_ms:.2f}x | {b.recall:.3f} -> {a.recall:.3f} |"
            )
    if paths:
        print()
        print("The adapter's two tenant-wide paths, each forced:")
        print()
        print(
            "| data | tenant's rows | share | exact: p50 | HNSW: p50 | HNSW: recall@10 "
            "| HNSW: fewer than 10 hits | cutoff | adapter ran |"
        )
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for p in paths:
            print(
                f"| {p.data} | {p.tenant_rows:,} | {p.share:g}% | {p.exact_p50:.2f} ms "
                f"| {p.graph_p50:.2f} ms | {p.graph_recall:.3f} | {p.graph_short} "
                f"| {p.cutoff:,} | {p.chosen} |"
            )
    if sides:
        print()
        print("Owner-scoped searches (about 50 rows per owner) and similar_to, top 10:")
        print()
        print(
            "| data | tenant's rows | share | owner-scoped: plan before / after "
            "| owner-scoped: p50 before / after | recall | similar_to: p50 before / after "
            "| similar_to: recall@10 before / after |"
        )
        print("| --- | --- | --- | --- | --- | --- | --- | --- |")
        for s in sides:
            print(
                f"| {s.data} | {s.tenant_rows:,} | {s.share:g}% "
                f"| {s.owned_plans[0] or '-'} / {s.owned_plans[1]} "
                f"| {ms(s.owned_before[0])} / {ms(s.owned_after[0])} "
                f"| {s.owned_before[1]:.3f} / {s.owned_after[1]:.3f} "
                f"| {ms(s.similar_before[0])} / {ms(s.similar_after[0])} "
                f"| {s.similar_before[1]:.3f} / {s.similar_after[1]:.3f} |"
            )
    print()
    print(
        "| layout | rows | tenants | load (upsert, no index) | index build | table | HNSW index |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for done in loads:
        spilled = " (spilled to disk)" if done.spilled else ""
        print(
            f"| {done.label} | {done.rows:,} | {done.tenants} "
            f"| {done.load_s:.1f} s ({done.rows / done.load_s:,.0f} rows/s) "
            f"| {done.build_s:.1f} s{spilled} | {done.table_mb:.0f} MB | {done.index_mb:.0f} MB |"
        )
    print()
    for key, value in extra.items():
        print(f"{key}: {value}")


def admin_params(url: str) -> dict[str, Any]:
    """asyncpg.connect arguments for a SQLAlchemy URL (Unix socket in ``?host=`` or TCP)."""
    parsed = make_url(url)
    socket_dir = parsed.query.get("host")
    return {
        "host": str(socket_dir) if socket_dir else parsed.host,
        "port": parsed.port or 5432,
        "user": parsed.username or "postgres",
        "password": parsed.password,
        "database": parsed.database,
    }


async def run(args: argparse.Namespace, url: str) -> None:
    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()
    log("loading all-MiniLM-L6-v2")
    model = load_minilm()
    sentences = generate_sentences(
        args.sentences + args.queries + args.warmup, random.Random(args.seed)
    )
    t0 = time.perf_counter()
    log(f"embedding {len(sentences):,} generated sentences")
    embedded = model.embed_sync(sentences)
    embed_s = time.perf_counter() - t0
    log(f"  {len(sentences) / embed_s:,.0f} sentences/s, {embed_s:.1f} s")
    bases, held_out = embedded[: args.sentences], embedded[args.sentences :]
    base_texts = sentences[: args.sentences]

    # Queries: held-out sentences (never indexed), blended with an indexed sentence and
    # jittered like the rows; the first ``warmup`` are only for warming up.
    query_vectors, _ = blend(held_out, bases, rng)
    warm, measured = query_vectors[: args.warmup], query_vectors[args.warmup :]

    def sentence_rows(count: int) -> tuple[F32, list[str]]:
        vectors, picked = blend(bases, bases, rng, count)
        return vectors, [base_texts[i] for i in picked]

    def uniform_rows(count: int) -> tuple[F32, list[str]]:
        return uniform(count, rng), ["uniform random"] * count

    results: list[Result] = []
    paths: list[Paths] = []
    sides: list[Side] = []
    loads: list[Load] = []
    ddl = hnsw_ddl(args.m, args.ef_construction)
    async with open_pgvector(url, timeout=600) as index:
        admin = await asyncpg.connect(**admin_params(url))
        before = Before(url) if args.before else None
        try:
            await register_vector(admin)
            if await admin.fetchval("SELECT count(*) FROM vector_item"):
                raise SystemExit(
                    "vector_item is not empty; the benchmark empties it, so point --url at a "
                    "scratch database"
                )
            log(f"server up; HNSW DDL: {' '.join(ddl.split())}")
            if args.overridden:
                log("  (settings overridden on the command line: not the adapter's own)")
            plan = [("sentences", shares, sentence_rows) for shares in pack(args.shares)]
            if args.uniform:
                plan.append(("uniform random (worst case)", [100.0], uniform_rows))
            for number, (data, shares, source) in enumerate(plan):
                tenants = layout_tenants(
                    shares, args.rows, source, args.seed + 100 * number, args.owned
                )
                label = f"{data}: " + ", ".join(f"{s:g}%" for s in shares)
                if len(tenants) > len(shares):
                    label += f" + {len(tenants) - len(shares)} tenants of up to {FILLER_SHARE:g}%"
                log(f"layout {number + 1}: {label}")
                loads.append(
                    await load(label, index, admin, tenants, args.batch, ddl, args.seed + number)
                )
                if data.startswith("uniform"):
                    q, w = uniform(len(measured), rng), uniform(len(warm), rng)
                else:
                    q, w = measured, warm
                for tenant in tenants:
                    if tenant.measured:
                        found, forced_paths, side = await measure(
                            data, index, before, admin, tenant, q, w, args
                        )
                        results.extend(found)
                        if forced_paths:
                            paths.append(forced_paths)
                        if side:
                            sides.append(side)
            extra = await settings(admin, ddl)
        finally:
            await admin.close()
            if before:
                await before.engine.dispose()
    extra["settings"] = (
        "OVERRIDDEN on the command line (exploration)" if args.overridden else "the adapter's own"
    )
    extra["embedding"] = f"{len(sentences):,} sentences in {embed_s:.1f} s"
    extra["total"] = f"{time.perf_counter() - started:.0f} s"
    print_report(results, paths, sides, loads, extra)


def shares_list(value: str) -> list[float]:
    shares = [float(part) for part in value.split(",") if part.strip()]
    if not shares or any(not 0 < s <= 100 for s in shares):
        raise argparse.ArgumentTypeError("percentages in (0, 100], comma-separated")
    return shares


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="vectors in the index")
    parser.add_argument(
        "--shares",
        type=shares_list,
        default=[1.0, 10.0, 50.0, 80.0, 100.0],
        help="percent of the rows held by each measured tenant (default 1,10,50,80,100)",
    )
    parser.add_argument("--queries", type=int, default=500, help="measured queries per tenant")
    parser.add_argument("--warmup", type=int, default=100, help="unmeasured warm-up queries")
    parser.add_argument(
        "--path-queries",
        type=int,
        default=100,
        help="queries timed through each forced path (0 skips it)",
    )
    parser.add_argument(
        "--side-queries",
        type=int,
        default=100,
        help="owner-scoped searches and similar_to calls per tenant (0 skips them)",
    )
    parser.add_argument(
        "--exact-check", type=int, default=20, help="queries whose exact top 10 SQL re-checks"
    )
    parser.add_argument(
        "--sentences", type=int, default=3000, help="distinct generated sentences to embed"
    )
    parser.add_argument("--batch", type=int, default=50, help="rows per upsert call")
    parser.add_argument(
        "--owned",
        type=float,
        default=0.5,
        help=f"fraction of rows with an owner (about {ROWS_PER_OWNER} rows per owner)",
    )
    parser.add_argument(
        "--no-uniform", dest="uniform", action="store_false", help="skip the uniform-random layout"
    )
    parser.add_argument(
        "--no-before", dest="before", action="store_false", help="skip the previous code's rows"
    )
    parser.add_argument(
        "--url",
        help="an empty database with pgvector available (SQLAlchemy URL) instead of a "
        "temporary embedded server",
    )
    parser.add_argument("--seed", type=int, default=20250)
    explore = parser.add_argument_group(
        "exploration", "override the adapter's settings (the report says so); default: its own"
    )
    explore.add_argument("--m", type=int, help="HNSW m for the index build")
    explore.add_argument("--ef-construction", type=int, help="HNSW ef_construction")
    explore.add_argument("--ef-search", type=int, help="hnsw.ef_search for the adapter's searches")
    explore.add_argument("--candidates", type=int, help="candidates per hit on the HNSW path")
    args = parser.parse_args(argv)
    args.overridden = any(
        value is not None
        for value in (args.m, args.ef_construction, args.ef_search, args.candidates)
    )
    if args.ef_search is not None:
        adapter.SESSION_SETTINGS = re.sub(
            r"hnsw\.ef_search = \d+", f"hnsw.ef_search = {args.ef_search}", adapter.SESSION_SETTINGS
        )
    if args.candidates is not None:
        adapter.CANDIDATES = args.candidates
    if args.url:
        asyncio.run(run(args, args.url))
        return 0
    with tempfile.TemporaryDirectory(prefix="chimera-vector-bench-") as tmp:
        log(f"starting embedded PostgreSQL in {tmp}")
        server = start_embedded_postgres(Path(tmp) / "pgdata", delete_on_stop=True)
        try:
            asyncio.run(ensure_database(server.socket_dir, DATABASE))
            asyncio.run(run(args, server.url(DATABASE)))
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
