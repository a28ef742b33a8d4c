"""pgvector top-10 search at 100k x 384: latency of PgVectorIndex.search and recall@10 against
exact search, measured in the same run.

Run: ``.venv/bin/python bench/vector_search.py`` (``--help`` for the counts and for the
exploration flags). 5 to 9 minutes on 2 shared cores, most of it building HNSW graphs and
running the exact searches.

It starts its own embedded PostgreSQL in a temporary directory (deleted at the end), opens the
index with ``open_pgvector`` (so the schema, the HNSW DDL and the per-connection ``hnsw.*``
settings are the adapter's own), and for each scenario:

1. empties ``vector_item`` and drops the HNSW index;
2. loads the rows through ``PgVectorIndex.upsert`` in batches (timed: the load);
3. re-creates the HNSW index with the adapter's own ``CREATE INDEX`` statement from
   ``pgvector.SCHEMA`` (timed: the build), then ANALYZE;
4. checks with EXPLAIN that the adapter's search statement uses the HNSW index;
5. warms up with queries that are not measured, then times ``PgVectorIndex.search`` (top 10,
   one kind, the tenant filter) end to end in Python, one query at a time, and again with 4
   concurrent clients for throughput;
6. computes the exact top 10 of every query in SQL with index scans off (a sequential scan
   ordered by cosine distance within the same tenant and kind), cross-checks that against
   numpy, and reports recall@10 = |approximate ids & exact ids| / 10, averaged.

Data (see docs/benchmarks.md): real all-MiniLM-L6-v2 embeddings of sentences generated from
templates and a vocabulary, blended and jittered to reach 100k distinct vectors; queries are
held-out sentences (never indexed) treated the same way. A last, labelled row uses uniform-random
vectors on the sphere, the worst case (``--no-uniform`` skips it).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
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

from app.stores.embeddings.minilm import load_minilm
from app.stores.postgres.embedded import ensure_database, start_embedded_postgres
from app.stores.vectors import pgvector as adapter
from app.stores.vectors.pgvector import PgVectorIndex, open_pgvector
from app.stores.vectors.port import DIMENSIONS, VectorKind, VectorQuery, VectorRecord

F32 = NDArray[np.float32]

K = 10
KIND = VectorKind.MEMORY
DATABASE = "vector_bench"
# The adapter's own DDL for the graph: whatever m and ef_construction pgvector.py says.
ADAPTER_DDL = next(statement for statement in adapter.SCHEMA if "USING hnsw" in statement)
# Enough for a 100k x 384 graph to be built in memory (about 200 MB): pgvector builds much
# faster when the graph fits in maintenance_work_mem, and the server's default is 64 MB.
BUILD_MEMORY = "1GB"
# Blending (see make_vectors): how much of a second sentence, and how much noise.
MIX_MAX = 0.5
NOISE = 0.25

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
    vectors: F32
    texts: list[str]


def tenant_rows(vectors: F32, texts: list[str], seed: int) -> Tenant:
    ids_rng = random.Random(seed)
    return Tenant(
        id=uuid.UUID(int=ids_rng.getrandbits(128), version=4),
        row_ids=[uuid.UUID(int=ids_rng.getrandbits(128), version=4) for _ in range(len(vectors))],
        vectors=vectors,
        texts=texts,
    )


@dataclass
class Load:
    rows: int
    load_s: float
    build_s: float
    table_mb: float
    index_mb: float
    spilled: bool


@dataclass
class Result:
    label: str
    indexed: int
    searched: int
    uses_hnsw: bool
    recall: float
    poor: int
    queries: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    qps: float
    qps_concurrent: float
    exact_agreement: float
    top1_similarity: float
    top10_similarity: float


async def reset(admin: asyncpg.Connection) -> None:
    await admin.execute("TRUNCATE vector_item")
    await admin.execute("DROP INDEX IF EXISTS vector_item_hnsw")


async def upsert_all(
    index: PgVectorIndex, tenant: Tenant, batch: int, *, label: str, start: int = 0
) -> float:
    """Upsert the tenant's rows from ``start`` in batches; returns the seconds it took."""
    started = time.perf_counter()
    next_report = start + 20_000
    for at in range(start, len(tenant.vectors), batch):
        chunk = tenant.vectors[at : at + batch].tolist()
        records = [
            VectorRecord(
                kind=KIND,
                row_id=tenant.row_ids[at + i],
                vector=vector,
                text=tenant.texts[at + i],
                content_hash=f"{at + i:016x}",
            )
            for i, vector in enumerate(chunk)
        ]
        await index.upsert(tenant.id, records)
        if at + batch >= next_report:
            done = min(at + batch, len(tenant.vectors)) - start
            rate = done / (time.perf_counter() - started)
            log(f"  {label}: {done:,} rows upserted ({rate:,.0f} rows/s)")
            next_report += 20_000
    return time.perf_counter() - started


async def load(
    index: PgVectorIndex,
    admin: asyncpg.Connection,
    tenants: Sequence[Tenant],
    batch: int,
    ddl: str,
) -> Load:
    await reset(admin)
    load_s = 0.0
    for tenant in tenants:
        load_s += await upsert_all(index, tenant, batch, label=f"tenant {str(tenant.id)[:8]}")
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
    await admin.execute("ANALYZE vector_item")
    table = await admin.fetchval("SELECT pg_table_size('vector_item')")
    size = await admin.fetchval("SELECT pg_relation_size('vector_item_hnsw')")
    rows = sum(len(t.vectors) for t in tenants)
    log(f"  loaded {rows:,} rows in {load_s:.1f} s, built the index in {build_s:.1f} s")
    return Load(
        rows=rows,
        load_s=load_s,
        build_s=build_s,
        table_mb=int(table) / 1e6,
        index_mb=int(size) / 1e6,
        spilled=any("no longer fits" in n for n in notices),
    )


async def search_plan(index: PgVectorIndex, tenant: uuid.UUID, vector: list[float]) -> str:
    """EXPLAIN of the adapter's own search statement, on one of its own connections."""
    params = {
        "vectors": [Vector(vector)],
        "excludes": [None],
        "owners": [None],
        "tenant": tenant,
        "kinds": [KIND.value],
        "limit": K,
    }
    async with index.engine.connect() as conn:
        rows = await conn.execute(text("EXPLAIN " + adapter.SEARCH), params)
        return "\n".join(str(row[0]) for row in rows)


def numpy_exact(vectors: F32, queries: F32, row_ids: list[uuid.UUID]) -> list[set[uuid.UUID]]:
    found: list[set[uuid.UUID]] = []
    for at in range(0, len(queries), 100):
        scores = queries[at : at + 100] @ vectors.T
        top = np.argpartition(-scores, K, axis=1)[:, :K]
        found.extend({row_ids[int(i)] for i in row} for row in top)
    return found


async def measure(
    label: str,
    index: PgVectorIndex,
    admin: asyncpg.Connection,
    tenant: Tenant,
    indexed: int,
    queries: F32,
    warmup: F32,
) -> Result:
    query_lists: list[list[float]] = queries.tolist()
    plan = await search_plan(index, tenant.id, query_lists[0])
    uses_hnsw = "vector_item_hnsw" in plan
    if not uses_hnsw:
        log(f"  the search does not use the HNSW index here; plan:\n{plan}")

    def query(vector: list[float]) -> VectorQuery:
        return VectorQuery(vector=vector, kinds=(KIND,), limit=K)

    for vector in warmup.tolist():
        await index.search(tenant.id, query(vector))
    requests = [query(v) for v in query_lists]
    latencies: list[float] = []
    approx: list[list[uuid.UUID]] = []
    started = time.perf_counter()
    for request in requests:
        t0 = time.perf_counter()
        hits = await index.search(tenant.id, request)
        latencies.append(time.perf_counter() - t0)
        approx.append([hit.row_id for hit in hits])
    qps = len(requests) / (time.perf_counter() - started)

    pending = iter(requests)

    async def client() -> None:
        for request in pending:
            await index.search(tenant.id, request)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(4)))
    qps_concurrent = len(requests) / (time.perf_counter() - started)
    log(f"  {label}: timed {len(requests)} searches; exact search in SQL next")

    await admin.execute("SET enable_indexscan = off")
    exact_plan = await admin.fetch("EXPLAIN " + EXACT, tenant.id, KIND.value, queries[0], K + 1)
    if any("vector_item_hnsw" in str(row[0]) for row in exact_plan):
        raise RuntimeError("the exact search would use the HNSW index")
    exact: list[set[uuid.UUID]] = []
    top1: list[float] = []
    top10: list[float] = []
    for vector in queries:
        rows = await admin.fetch(EXACT, tenant.id, KIND.value, vector, K)
        exact.append({row["row_id"] for row in rows})
        top1.append(1.0 - float(rows[0]["distance"]))
        top10.append(1.0 - float(rows[-1]["distance"]))
    await admin.execute("RESET enable_indexscan")

    reference = numpy_exact(tenant.vectors, queries, tenant.row_ids)
    agreement = float(np.mean([len(a & b) / K for a, b in zip(exact, reference, strict=True)]))
    recalls = [len(set(a) & b) / K for a, b in zip(approx, exact, strict=True)]
    p50, p95, p99 = np.percentile(np.array(latencies) * 1000.0, [50, 95, 99])
    result = Result(
        label=label,
        indexed=indexed,
        searched=len(tenant.vectors),
        uses_hnsw=uses_hnsw,
        recall=float(np.mean(recalls)),
        poor=sum(1 for r in recalls if r < 0.5),
        queries=len(recalls),
        p50_ms=float(p50),
        p95_ms=float(p95),
        p99_ms=float(p99),
        qps=qps,
        qps_concurrent=qps_concurrent,
        exact_agreement=agreement,
        top1_similarity=float(np.median(top1)),
        top10_similarity=float(np.median(top10)),
    )
    log(
        f"  {label}: recall@10 {result.recall:.3f}, p50 {result.p50_ms:.2f} ms, "
        f"p99 {result.p99_ms:.2f} ms, {result.qps:,.0f} q/s"
    )
    return result


async def settings(index: PgVectorIndex, admin: asyncpg.Connection) -> dict[str, str]:
    async with index.engine.connect() as conn:
        ef = (await conn.execute(text("SHOW hnsw.ef_search"))).scalar_one()
        scan = (await conn.execute(text("SHOW hnsw.iterative_scan"))).scalar_one()
        tuples = (await conn.execute(text("SHOW hnsw.max_scan_tuples"))).scalar_one()
    options = await admin.fetchval(
        "SELECT reloptions FROM pg_class WHERE relname = 'vector_item_hnsw'"
    )
    found = dict(option.split("=", 1) for option in (options or []))
    return {
        "m": found.get("m", "16 (default)"),
        "ef_construction": found.get("ef_construction", "64 (default)"),
        "hnsw.ef_search": str(ef),
        "hnsw.iterative_scan": str(scan),
        "hnsw.max_scan_tuples": str(tuples),
        "server": str(await admin.fetchval("SHOW server_version")),
        "pgvector": str(
            await admin.fetchval("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        ),
        "shared_buffers": str(await admin.fetchval("SHOW shared_buffers")),
        "build maintenance_work_mem": BUILD_MEMORY,
        "max_parallel_maintenance_workers": str(
            await admin.fetchval("SHOW max_parallel_maintenance_workers")
        ),
    }


def print_report(
    results: list[Result], loads: list[tuple[str, Load]], extra: dict[str, str]
) -> None:
    print()
    print(
        "| data | rows in index | rows of the searched tenant | HNSW used | recall@10 "
        "| queries under 0.5 | p50 | p95 | p99 | QPS, 1 client | QPS, 4 clients |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        print(
            f"| {r.label} | {r.indexed:,} | {r.searched:,} | {'yes' if r.uses_hnsw else 'no'} "
            f"| {r.recall:.3f} | {r.poor} of {r.queries} | {r.p50_ms:.2f} ms | {r.p95_ms:.2f} ms "
            f"| {r.p99_ms:.2f} ms | {r.qps:,.0f} | {r.qps_concurrent:,.0f} |"
        )
    print()
    print("| data | exact: SQL vs numpy | median similarity of the exact 1st / 10th neighbour |")
    print("| --- | --- | --- |")
    for r in results:
        print(
            f"| {r.label} | {r.exact_agreement:.4f} | "
            f"{r.top1_similarity:.3f} / {r.top10_similarity:.3f} |"
        )
    print()
    print(
        "| data | rows | load (upsert, no index) | index build | table | HNSW index "
        "| graph spilled to disk |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for label, done in loads:
        print(
            f"| {label} | {done.rows:,} | {done.load_s:.1f} s ({done.rows / done.load_s:,.0f} rows/s)"
            f" | {done.build_s:.1f} s | {done.table_mb:.0f} MB | {done.index_mb:.0f} MB "
            f"| {'yes' if done.spilled else 'no'} |"
        )
    print()
    for key, value in extra.items():
        print(f"{key}: {value}")


async def run(args: argparse.Namespace, socket_dir: str, url: str) -> None:
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

    await ensure_database(socket_dir, DATABASE)
    admin = await asyncpg.connect(host=socket_dir, user="postgres", database=DATABASE)
    results: list[Result] = []
    loads: list[tuple[str, Load]] = []
    extra: dict[str, str] = {}
    ddl = hnsw_ddl(args.m, args.ef_construction)
    overridden = ddl != ADAPTER_DDL or args.ef_search is not None
    try:
        async with open_pgvector(url, timeout=600) as index:
            if args.ef_search is not None:
                # Registered before the pool has made any connection, and after the adapter's
                # own listener, so every connection ends up with this value.
                @event.listens_for(index.engine.sync_engine, "connect")
                def _ef_search(dbapi_connection: Any, _record: Any) -> None:
                    dbapi_connection.run_async(
                        lambda conn: conn.execute(f"SET hnsw.ef_search = {args.ef_search}")
                    )

            await register_vector(admin)
            log(f"server up; HNSW DDL: {' '.join(ddl.split())}")
            if overridden:
                log("  (settings overridden on the command line: not the adapter's own)")

            # 1. One tenant, 100k blended sentence vectors.
            vectors, picked = blend(bases, bases, rng, args.rows)
            one = tenant_rows(vectors, [base_texts[i] for i in picked], args.seed + 1)
            log(f"scenario 1: one tenant, {args.rows:,} sentence vectors")
            loads.append(("sentences, 1 tenant", await load(index, admin, [one], args.batch, ddl)))
            extra.update(await settings(index, admin))
            results.append(
                await measure("sentences, 1 tenant", index, admin, one, args.rows, measured, warm)
            )
            # What the production path costs: upserts into a table that already has the graph.
            more, more_picked = blend(bases, bases, rng, args.incremental)
            extra_rows = tenant_rows(more, [base_texts[i] for i in more_picked], args.seed + 2)
            extra_rows.id = one.id
            seconds = await upsert_all(index, extra_rows, 100, label="incremental")
            extra["incremental upsert with the index in place"] = (
                f"{args.incremental:,} rows in batches of 100 on top of {args.rows:,}: "
                f"{seconds:.1f} s ({args.incremental / seconds:,.0f} rows/s)"
            )
            log(f"  {extra['incremental upsert with the index in place']}")

            # 2. Two tenants in one graph: the searched one holds a fifth of the rows.
            target_n = args.rows // 5
            v_other, p_other = blend(bases, bases, rng, args.rows - target_n)
            v_target, p_target = blend(bases, bases, rng, target_n)
            other = tenant_rows(v_other, [base_texts[i] for i in p_other], args.seed + 3)
            target = tenant_rows(v_target, [base_texts[i] for i in p_target], args.seed + 4)
            log(
                f"scenario 2: two tenants, {len(v_other):,} + {target_n:,} sentence vectors "
                "in one index"
            )
            loads.append(
                ("sentences, 2 tenants", await load(index, admin, [other, target], args.batch, ddl))
            )
            results.append(
                await measure(
                    f"sentences, tenant with {target_n // 1000}k of {args.rows // 1000}k",
                    index,
                    admin,
                    target,
                    args.rows,
                    measured,
                    warm,
                )
            )
            results.append(
                await measure(
                    f"sentences, tenant with {len(v_other) // 1000}k of {args.rows // 1000}k",
                    index,
                    admin,
                    other,
                    args.rows,
                    measured,
                    warm,
                )
            )

            # 3. The worst case no embedding model produces: uniform on the sphere.
            if args.uniform:
                log(f"scenario 3: one tenant, {args.rows:,} uniform-random vectors")
                noise = tenant_rows(
                    uniform(args.rows, rng), ["uniform random"] * args.rows, args.seed + 5
                )
                loads.append(
                    ("uniform random, 1 tenant", await load(index, admin, [noise], args.batch, ddl))
                )
                results.append(
                    await measure(
                        "uniform random (worst case), 1 tenant",
                        index,
                        admin,
                        noise,
                        args.rows,
                        uniform(len(measured), rng),
                        uniform(len(warm), rng),
                    )
                )
    finally:
        await admin.close()
    extra["settings"] = (
        "OVERRIDDEN on the command line (exploration)" if overridden else "the adapter's own"
    )
    extra["embedding"] = f"{len(sentences):,} sentences in {embed_s:.1f} s"
    extra["total"] = f"{time.perf_counter() - started:.0f} s"
    print_report(results, loads, extra)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="vectors in the index")
    parser.add_argument("--queries", type=int, default=500, help="measured queries")
    parser.add_argument("--warmup", type=int, default=100, help="unmeasured warm-up queries")
    parser.add_argument(
        "--sentences", type=int, default=3000, help="distinct generated sentences to embed"
    )
    parser.add_argument("--batch", type=int, default=1000, help="rows per upsert call")
    parser.add_argument(
        "--incremental", type=int, default=2000, help="rows upserted with the index in place"
    )
    parser.add_argument(
        "--no-uniform", dest="uniform", action="store_false", help="skip the uniform-random row"
    )
    parser.add_argument("--seed", type=int, default=20250)
    explore = parser.add_argument_group(
        "exploration", "override the adapter's settings (the report says so); default: its own"
    )
    explore.add_argument("--m", type=int, help="HNSW m for the index build")
    explore.add_argument("--ef-construction", type=int, help="HNSW ef_construction")
    explore.add_argument("--ef-search", type=int, help="hnsw.ef_search on every connection")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="chimera-vector-bench-") as tmp:
        log(f"starting embedded PostgreSQL in {tmp}")
        server = start_embedded_postgres(Path(tmp) / "pgdata", delete_on_stop=True)
        try:
            asyncio.run(run(args, server.socket_dir, server.url(DATABASE)))
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
