"""The indexer survives poison rows and a crash mid-batch without losing or duplicating work."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from app.auth import Principal, Role
from app.commands.agents import create_agent
from app.indexing.indexer import MAX_ATTEMPTS, dead_letters, run_once
from app.indexing.reconcile import find_drift
from app.lifespan import Stores
from app.settings import Settings
from app.stores.embeddings.port import Embedder
from app.stores.postgres.tables import outbox
from app.stores.vectors.port import VectorKind
from tests.indexing import index_everything
from tests.processes import CHIMERA, ROOT, chimera_env
from tests.support import SECRET, TenantClient


class PoisonedEmbedder:
    """The real model, except that it fails on one text: a row it can never index."""

    def __init__(self, real: Embedder) -> None:
        self.real = real
        self.name = real.name
        self.dimensions = real.dimensions

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if any("POISON" in t for t in texts):
            raise ValueError("this text cannot be embedded")
        return await self.real.embed(texts)


def principal_of(tenant: TenantClient) -> Principal:
    return Principal(tenant.id, tenant.slug, Role.EDITOR, "test")


async def _events(engine: AsyncEngine, tenant: TenantClient, *, indexed: bool) -> int:
    column = outbox.c.indexed_at
    async with engine.connect() as conn:
        return int(
            await conn.scalar(
                select(func.count())
                .select_from(outbox)
                .where(
                    outbox.c.tenant_id == tenant.id,
                    column.is_not(None) if indexed else column.is_(None),
                )
            )
            or 0
        )


async def test_a_poison_row_is_retried_then_dead_lettered_without_blocking_others(
    tenant: TenantClient, app: Starlette, engine: AsyncEngine
) -> None:
    stores: Stores = app.state.stores
    assert stores.embedder is not None
    await index_everything(app)  # start from an empty backlog
    before = await dead_letters(engine)
    good = await create_agent(
        engine, principal_of(tenant), name="Healthy", persona="fine", status="ACTIVE"
    )
    await create_agent(engine, principal_of(tenant), name="POISON", persona="x", status="ACTIVE")
    poisoned = PoisonedEmbedder(stores.embedder)
    for attempt in range(1, MAX_ATTEMPTS + 1):
        # A pass skips rows another transaction holds (the relay marks the same rows
        # published), so an empty pass is not proof of anything: pass until this attempt
        # is recorded, within a bound.
        async with asyncio.timeout(30):
            while await _attempts(engine, tenant) != [attempt]:
                await run_once(engine, stores.vectors, poisoned)
                await asyncio.sleep(0.01)
        async with engine.begin() as conn:  # let the backoff elapse instantly
            await conn.execute(
                update(outbox)
                .where(outbox.c.tenant_id == tenant.id, outbox.c.indexed_at.is_(None))
                .values(index_next_at=None)
            )
        attempts = await _attempts(engine, tenant)
        assert attempts == [attempt]
    assert await dead_letters(engine) == before + 1
    assert await run_once(engine, stores.vectors, poisoned) == 0  # given up on, not retried
    indexed = {e.row_id for e in await stores.vectors.entries(tenant.id, VectorKind.AGENT)}
    assert indexed == {good.id}
    # A dead letter is not lost: reconciliation still finds the row missing from the index.
    [drift] = [d for d in await find_drift(engine, stores.vectors) if d.tenant_id == tenant.id]
    assert len(drift.missing) == 1
    async with engine.begin() as conn:  # leave no dead letter behind for other tests
        await conn.execute(
            update(outbox).where(outbox.c.tenant_id == tenant.id).values(indexed_at=func.now())
        )


async def _attempts(engine: AsyncEngine, tenant: TenantClient) -> list[int]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(outbox.c.index_attempts).where(
                outbox.c.tenant_id == tenant.id, outbox.c.indexed_at.is_(None)
            )
        )
        return [r.index_attempts for r in rows]


async def test_killing_the_worker_mid_batch_loses_nothing(
    tenant: TenantClient, app: Starlette, engine: AsyncEngine, settings: Settings, tmp_path: Path
) -> None:
    stores: Stores = app.state.stores
    await index_everything(app)
    total = 600
    for i in range(total):
        await create_agent(
            engine,
            principal_of(tenant),
            name=f"agent {i}",
            persona=f"writes about topic number {i}",
            status="ACTIVE",
        )
    env = chimera_env(
        DATABASE_URL=settings.database_url or "",
        REDIS_URL=settings.redis_url or "",
        PGVECTOR_URL=settings.pgvector_url or "",
        CHIMERA_AUTH_SECRET=SECRET,
        CHIMERA_DATA_DIR=str(tmp_path),
    )
    worker = await asyncio.create_subprocess_exec(
        *CHIMERA,
        "worker",
        env=env,
        cwd=ROOT,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while (done := await _events(engine, tenant, indexed=True)) == 0:
            assert time.monotonic() < deadline, "the worker indexed nothing"
            assert worker.returncode is None, "the worker exited"
            await asyncio.sleep(0.02)
        worker.send_signal(signal.SIGKILL)
        await asyncio.wait_for(worker.wait(), timeout=10)
    finally:
        if worker.returncode is None:
            worker.kill()
            await worker.wait()
    assert done < total, "the worker finished before it could be killed; raise the total"
    left = await _events(engine, tenant, indexed=False)
    assert left > 0
    await index_everything(app)
    assert await _events(engine, tenant, indexed=False) == 0
    entries = await stores.vectors.entries(tenant.id, VectorKind.AGENT)
    assert len(entries) == total
    assert [d for d in await find_drift(engine, stores.vectors) if d.tenant_id == tenant.id] == []
