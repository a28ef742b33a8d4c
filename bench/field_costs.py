"""What each field of the dashboard query costs, in process.

Query C without one of its fields, or with one of E's, against C itself.

The load benchmark (bench/dashboard.py) says what a whole query costs under wrk; this says
which fields that CPU goes to, the question to ask before making a query cheaper. Over the
dashboard bench's engines and dataset (bench/dashboard_seed.py, in .chimera-bench/, seeded on
first use), it serves each variant in process as bench/profile_query.py does, one request at
a time, the variants in turn for each round, and prints each variant's CPU per request and
its difference to C's in the same round.

    .venv/bin/python bench/field_costs.py [--requests 150] [--rounds 3] [--only=-activeTasks,+metrics]

The app runs as the dashboard bench serves it: production settings, the shared caches off,
no relay or indexer. On a shared machine one variant moves by up to a millisecond from round
to round: compare medians over several rounds, not single figures.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
from pathlib import Path

sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

from dashboard import E_WINDOW
from dashboard_queries import PAGE_SIZE, QUERY_C, QUERY_E
from dashboard_seed import FULL, SMOKE, seed, start_engines
from profile_query import SECRET, measure

from app.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
C_HEADER = "query DashboardC($first: Int!) {"
E_HEADER = "query DashboardC($first: Int!, $from: DateTime!, $to: DateTime!) {"
# C's own fields, each left out in turn.
REMOVED = {
    "-engagement": "engagement { impressions clicks likes shares comments }",
    "-activeTasks": " activeTasks",
    "-url": " url",
    "-similar": "similar(limit: 3) { score campaign { id name } }",
}
# E's fields, each added to C in turn (as query E asks for them).
ADDED = {
    "+money": "currency spent remainingBudget",
    "+metrics": "metrics(from: $from, to: $to, bucket: HOUR) { at impressions clicks spend }",
    "+history": "history(first: 5) { edges { node { action actor occurredAt "
    "changes { field before after } } } }",
    "+transactions": "transactions(first: 3) { edges { node { id amount kind createdAt } } }",
}


def variants() -> dict[str, str]:
    """Each variant's document, checked against the bench's own queries."""
    assert C_HEADER in QUERY_C
    documents = {"C": QUERY_C}
    for name, text in REMOVED.items():
        assert QUERY_C.count(text) == 1, name
        documents[name] = QUERY_C.replace(text, "")
    for name, text in ADDED.items():
        assert " ".join(text.split()) in " ".join(QUERY_E.split()), name
        document = QUERY_C.replace("similar(limit: 3)", f"{text}\n      similar(limit: 3)")
        if "$from" in text:
            document = document.replace(C_HEADER, E_HEADER)
        documents[name] = document
    return documents


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=150, help="per variant and round")
    parser.add_argument("--warmup", type=int, default=15)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--only",
        help="comma-separated variants, as --only=-similar,+metrics (C is always measured)",
    )
    parser.add_argument("--smoke", action="store_true", help="150 campaigns, 20 requests")
    parser.add_argument("--data-dir", type=Path, default=ROOT / ".chimera-bench")
    args = parser.parse_args(argv)
    documents = variants()
    if args.only:
        chosen = {"C", *args.only.split(",")}
        unknown = chosen - documents.keys()
        if unknown:
            parser.error(
                f"no variant {', '.join(sorted(unknown))}; there are {', '.join(documents)}"
            )
        documents = {name: text for name, text in documents.items() if name in chosen}
    dataset = SMOKE if args.smoke else FULL
    requests = 20 if args.smoke else args.requests
    data_dir = args.data_dir.resolve()
    engines = start_engines(data_dir)
    try:
        asyncio.run(seed(engines, dataset))
        settings = Settings(
            database_url=engines.sqlalchemy_url(dataset.database),
            redis_url=engines.redis_url,
            pgvector_url=engines.sqlalchemy_url(dataset.vector_database),
            indexer_enabled=False,
            relay_enabled=False,
            media_sweep_seconds=0,
            similar_cache_seconds=0,
            embedding_cache_seconds=0,
            access_log=False,
            auth_secret=SECRET,
            data_dir=data_dir / "field-costs",
            env="production",
        )
        costs: dict[str, list[float]] = {name: [] for name in documents}
        for _ in range(args.rounds):
            for name, document in documents.items():
                run = argparse.Namespace(
                    query=name,
                    first=PAGE_SIZE,
                    requests=requests,
                    warmup=args.warmup,
                    concurrency=1,
                    env="production",
                    profile=None,
                    callgrind=False,
                    dump=None,
                    memory=False,
                )
                window = E_WINDOW if "$from" in document else {}
                variables = {"first": PAGE_SIZE, **window}
                cost = asyncio.run(measure(settings, dataset.tenant_id, run, document, variables))
                costs[name].append(cost)
    finally:
        engines.postgres.stop()
        engines.redis.stop()
    print(f"\n{'variant':<15} {'ms CPU/request (rounds)':<30} {'vs C, median of rounds':>22}")
    for name, values in costs.items():
        rounds = " ".join(f"{v:.2f}" for v in values)
        diffs = [v - c for v, c in zip(values, costs["C"], strict=True)]
        print(f"{name:<15} {rounds:<30} {statistics.median(diffs):>+20.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
