"""The task queue measured: its core against arq on the same Redis, the same flow through
GraphQL, and one agent's claims beside another's 100,000-task backlog.

Run: ``.venv/bin/python bench/task_queue.py --database-url postgresql://...`` (``--help``;
without a database URL the GraphQL flow is skipped); it prints the table that
docs/benchmarks.md quotes. Every flow is one process: producers enqueue empty tasks while one
consumer claims (up to 50 at a time) and completes them, polling every ``--poll`` seconds
when it finds nothing, as arq's worker does (its ``poll_delay``). Reported: tasks per second
from the first enqueue to the last completion, and the time from sending an enqueue to the
consumer holding the task (p50, p99); paced runs send ``--rate`` tasks a second.

arq pins redis-py below 6, which this project's client is not, so arq runs from a virtualenv
of its own (made under bench/.arq-venv on first use, from PyPI) in a child process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from redis.asyncio import Redis

from app.queue.core import NewTask, TaskQueue

HERE = Path(__file__).resolve().parent
ARQ_VENV = HERE / ".arq-venv"
ARQ_VERSION = "0.28.0"


@dataclass
class Result:
    name: str
    tasks: int
    seconds: float
    p50: float
    p99: float

    @property
    def rate(self) -> float:
        return self.tasks / self.seconds

    def row(self) -> str:
        return (
            f"| {self.name} | {self.tasks} | {self.rate:,.0f} | {self.p50 * 1000:.1f} | "
            f"{self.p99 * 1000:.1f} |"
        )


def percentiles(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return ordered[len(ordered) // 2], ordered[int(len(ordered) * 0.99)]


async def flow(
    name: str,
    tasks: int,
    producers: int,
    poll: float,
    rate: float,
    enqueue: Callable[[int], Awaitable[str]],
    claim: Callable[[], Awaitable[list[tuple[str, str]]]],
    complete: Callable[[str, str], Awaitable[None]],
) -> Result:
    """Producers and one consumer at once; returns when every task is completed."""
    sent: dict[str, float] = {}
    held: dict[str, float] = {}
    pending_keys: dict[int, float] = {}

    async def produce(offset: int) -> None:
        for i in range(offset, tasks, producers):
            pending_keys[i] = time.perf_counter()
            task_id = await enqueue(i)
            sent[task_id] = pending_keys.pop(i)
            if rate:  # paced: all producers together send ``rate`` a second
                await asyncio.sleep(producers / rate)

    async def consume() -> None:
        while len(held) < tasks:
            leases = await claim()
            if not leases:
                await asyncio.sleep(poll)
                continue
            now = time.perf_counter()
            for task_id, _token in leases:
                held[task_id] = now
            await asyncio.gather(*(complete(t, token) for t, token in leases))

    began = time.perf_counter()
    await asyncio.gather(consume(), *(produce(p) for p in range(producers)))
    seconds = time.perf_counter() - began
    # A task claimed before its enqueue's reply came back counts from when it was sent.
    latencies = [held[t] - sent[t] for t in held if t in sent]
    p50, p99 = percentiles(latencies)
    return Result(name, tasks, seconds, p50, p99)


async def core_flow(
    redis: Redis, tasks: int, producers: int, poll: float, rate: float = 0
) -> Result:
    queue = TaskQueue(redis, uuid.uuid4(), timeout=30)
    agent = uuid.uuid4()

    async def enqueue(i: int) -> str:
        record, _ = await queue.enqueue(NewTask(agent, None, "noop", None), f"k-{i}")
        return str(record.id)

    async def claim() -> list[tuple[str, str]]:
        claimed = await queue.claim(agent, 50, 60)
        return [(str(lease.task.id), lease.token) for lease in claimed.leases]

    async def complete(task_id: str, token: str) -> None:
        await queue.complete(agent, uuid.UUID(task_id), token, None)

    name = "Chimera queue core (Lua scripts)" + (f", paced at {rate:.0f}/s" if rate else "")
    return await flow(name, tasks, producers, poll, rate, enqueue, claim, complete)


async def graphql_flow(
    database_url: str, redis_url: str, tasks: int, producers: int, poll: float
) -> Result:
    """The same flow as HTTP requests to the app (in this process, over ASGI)."""
    from app.auth import Role
    from app.ids import encode_id
    from app.stores.postgres.tables import agent
    from bench.scratch_app import scratch_app

    async with scratch_app(database_url, redis_url, indexer_enabled=False) as scratch:
        agent_id = uuid.uuid4()
        stores = scratch.app.state.stores
        async with stores.engine.begin() as conn:
            await conn.execute(
                agent.insert().values(id=agent_id, tenant_id=scratch.tenant_id, name="bench")
            )
        agent_gid = encode_id("Agent", agent_id)
        editor, runtime = scratch.token(), scratch.token(Role.AGENT, agent_id)

        async def enqueue(i: int) -> str:
            data = await scratch.call(
                editor,
                "mutation($a: ID!, $k: String!) { enqueueTask(input: {agentId: $a, "
                'kind: "noop", idempotencyKey: $k}) { task { id } } }',
                {"a": agent_gid, "k": f"k-{i}"},
            )
            task_id: str = data["enqueueTask"]["task"]["id"]
            return task_id

        async def claim() -> list[tuple[str, str]]:
            data = await scratch.call(
                runtime,
                "mutation { claimTasks(input: {max: 50, leaseSeconds: 60}) { leases { "
                "leaseToken task { id } } } }",
            )
            return [(x["task"]["id"], x["leaseToken"]) for x in data["claimTasks"]["leases"]]

        async def complete(task_id: str, token: str) -> None:
            await scratch.call(
                runtime,
                "mutation($id: ID!, $t: String!) { completeTask(input: {id: $id, "
                "leaseToken: $t}) { task { status } } }",
                {"id": task_id, "t": token},
            )

        return await flow(
            "Chimera through GraphQL (enqueueTask, claimTasks, completeTask)",
            tasks,
            producers,
            poll,
            0,
            enqueue,
            claim,
            complete,
        )


def arq_python() -> str:
    python = ARQ_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(ARQ_VENV)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", f"arq=={ARQ_VERSION}"], check=True
        )
    return str(python)


def arq_flow(redis_url: str, tasks: int, producers: int, poll: float, rate: float = 0) -> Result:
    out = subprocess.run(
        [
            arq_python(),
            str(HERE / "task_queue_arq.py"),
            redis_url,
            str(tasks),
            str(producers),
            str(poll),
            str(rate),
        ],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": ""},
    )
    found = json.loads(out.stdout.strip().splitlines()[-1])
    p50, p99 = found["latencies"]
    name = f"arq {ARQ_VERSION} (Worker, poll_delay={poll})" + (
        f", paced at {rate:.0f}/s" if rate else ""
    )
    return Result(name, tasks, found["seconds"], p50, p99)


async def fairness(redis: Redis, backlog: int, claims: int) -> tuple[float, float]:
    """Agent B's enqueue-then-claim round trip (p50, seconds) beside agent A's backlog of
    ``backlog`` tasks, and without it."""
    queue = TaskQueue(redis, uuid.uuid4(), timeout=60)
    a, b = uuid.uuid4(), uuid.uuid4()

    async def b_claims() -> float:
        timings = []
        for _ in range(claims):
            await queue.enqueue(NewTask(b, None, "noop", None), f"b-{uuid.uuid4()}")
            began = time.perf_counter()
            (lease,) = (await queue.claim(b, 1, 60)).leases
            timings.append(time.perf_counter() - began)
            await queue.complete(b, lease.task.id, lease.token, None)
        return percentiles(timings)[0]

    alone = await b_claims()
    for start in range(0, backlog, 50):
        await asyncio.gather(
            *(
                queue.enqueue(NewTask(a, None, "noop", None), f"a-{i}")
                for i in range(start, min(backlog, start + 50))
            )
        )
    beside = await b_claims()
    return alone, beside


async def run(args: argparse.Namespace) -> list[str]:
    redis = Redis.from_url(args.redis_url)
    await redis.flushdb()
    lines = [
        "| flow | tasks | tasks/s | enqueue-to-claim p50 (ms) | p99 (ms) |",
        "|---|---:|---:|---:|---:|",
    ]
    results = [await core_flow(redis, args.tasks, args.producers, args.poll)]
    await redis.flushdb()
    results.append(arq_flow(args.redis_url, args.tasks, args.producers, args.poll))
    await redis.flushdb()
    if args.database_url:
        results.append(
            await graphql_flow(
                args.database_url, args.redis_url, args.graphql_tasks, args.producers, args.poll
            )
        )
    await redis.flushdb()
    paced = [await core_flow(redis, args.paced_tasks, args.producers, args.poll, args.rate)]
    await redis.flushdb()
    paced.append(arq_flow(args.redis_url, args.paced_tasks, args.producers, args.poll, args.rate))
    lines += [r.row() for r in results + paced]
    core, arq = results[0], results[1]
    lines.append("")
    lines.append(f"Core / arq throughput: {core.rate / arq.rate:.2f}x.")
    await redis.flushdb()
    alone, beside = await fairness(redis, args.backlog, 200)
    lines.append(
        f"Another agent's claim (p50) beside a {args.backlog:,}-task backlog: "
        f"{beside * 1000:.2f} ms, alone {alone * 1000:.2f} ms ({beside / alone:.2f}x)."
    )
    await redis.flushdb()
    await redis.aclose()
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/12")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--graphql-tasks", type=int, default=2_000)
    parser.add_argument("--producers", type=int, default=20)
    parser.add_argument("--poll", type=float, default=0.005)
    parser.add_argument("--backlog", type=int, default=100_000)
    parser.add_argument("--paced-tasks", type=int, default=2_000)
    parser.add_argument("--rate", type=float, default=200.0, help="tasks/s of the paced runs")
    args = parser.parse_args()
    for line in asyncio.run(run(args)):
        print(line)


if __name__ == "__main__":
    main()
