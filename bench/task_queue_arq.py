"""arq's side of bench/task_queue.py, run by an interpreter that has arq (its redis pin clashes with
ours, so bench/task_queue.py makes a virtualenv for it). Prints one JSON line of results.

    python bench/task_queue_arq.py REDIS_URL TASKS PRODUCERS POLL_SECONDS [RATE]
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from typing import Any

from arq import Worker, create_pool
from arq.connections import RedisSettings

enqueued_at: dict[str, float] = {}
started_at: dict[str, float] = {}
finished = asyncio.Event()
expected = 0


async def noop(ctx: dict[str, Any]) -> None:
    started_at[ctx["job_id"]] = time.perf_counter()
    if len(started_at) == expected:
        finished.set()


async def main(url: str, tasks: int, producers: int, poll: float, rate: float) -> dict[str, Any]:
    global expected
    expected = tasks
    settings = RedisSettings.from_dsn(url)
    pool = await create_pool(settings)
    await pool.flushdb()
    worker = Worker(
        functions=[noop],
        redis_pool=pool,
        poll_delay=poll,
        max_jobs=50,
        handle_signals=False,
        keep_result=0,
    )
    running = asyncio.create_task(worker.main())
    began = time.perf_counter()

    async def produce(offset: int) -> None:
        for i in range(offset, tasks, producers):
            sent = time.perf_counter()
            enqueued_at[f"job-{i}"] = sent
            job = await pool.enqueue_job("noop", _job_id=f"job-{i}")
            assert job is not None
            if rate:  # paced: all producers together send ``rate`` a second
                await asyncio.sleep(producers / rate)

    await asyncio.gather(*(produce(p) for p in range(producers)))
    await asyncio.wait_for(finished.wait(), timeout=600)
    while worker.jobs_complete < tasks or worker.tasks:  # noqa: ASYNC110 - arq has no event for it
        await asyncio.sleep(0.001)
    wall = time.perf_counter() - began
    running.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await running
    await pool.aclose()
    latencies = sorted(started_at[j] - enqueued_at[j] for j in enqueued_at if j in started_at)
    return {
        "tasks": tasks,
        "seconds": wall,
        "latencies": [latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.99)]],
    }


if __name__ == "__main__":
    rate = float(sys.argv[5]) if len(sys.argv) > 5 else 0.0
    result = asyncio.run(
        main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), rate)
    )
    print(json.dumps(result))
