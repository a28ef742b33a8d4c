"""bench/vector_search.py at a tiny size, so that it cannot rot unnoticed: it once formatted
the adapter's search template wrongly and crashed on its first query. The figures are not
checked against targets here (docs/benchmarks.md has the real run), only that the run
completes, that both of the adapter's tenant-wide paths ran, and that the recall it reports is
a sane one."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys

from tests.engines import create_database, drop_database
from tests.processes import ROOT

BENCH = ROOT / "bench" / "vector_search.py"
# 3,000 rows: a tenant holding all of them walks the HNSW graph (above the adapter's
# exact-ranking cutoff), a tenant holding 5% is ranked exactly. A few seconds in all.
ARGS = [
    "--rows=3000",
    "--shares=5,100",
    "--sentences=200",
    "--queries=20",
    "--warmup=5",
    "--path-queries=10",
    "--side-queries=10",
    "--exact-check=5",
    "--no-uniform",
]
# | data | tenant's rows | share | code | plan | recall@10 | ...
ROW = re.compile(
    r"^\| sentences \| (?P<rows>[\d,]+) \| (?P<share>[\d.]+)% \| (?P<code>before|after) "
    r"\| (?P<plan>[^|]+) \| (?P<recall>[01]\.\d{3}) \|",
    re.MULTILINE,
)


async def test_the_vector_benchmark_runs_at_a_small_size(pgvector_url: str) -> None:
    url = await create_database(pgvector_url, prefix="chimera_vector_bench")
    try:
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, str(BENCH), f"--url={url}", *ARGS],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
    finally:
        await drop_database(url)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    rows = {(m["share"], m["code"]): m for m in ROW.finditer(done.stdout)}
    assert set(rows) == {(share, code) for share in ("5", "100") for code in ("before", "after")}
    assert rows[("100", "after")]["plan"].strip() == "HNSW"
    assert rows[("5", "after")]["plan"].strip().startswith("exact")
    for row in rows.values():
        assert 0.9 <= float(row["recall"]) <= 1.0, output[-4000:]
