"""The indexer: outbox events in, vectors upserted or deleted, each event marked done.

It never trusts an event's payload for content: an event only says which row to look at, and
the row is read as it is now. Replaying an event, or processing two events for one row, is
therefore harmless, which is what makes the whole thing safe to crash at any point: a batch is
claimed with FOR UPDATE SKIP LOCKED inside a transaction that also marks it done, so a killed
worker's batch is simply claimed again. A row that keeps failing is retried with backoff and
then left as a dead letter (see :func:`dead_letters`), without holding up the others.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Iterable
from typing import Any
from uuid import UUID

from opentelemetry.trace import StatusCode, Tracer
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.indexing.documents import Document, load_documents
from app.stores.embeddings.port import Embedder
from app.stores.postgres.tables import outbox
from app.stores.vectors.port import VectorIndex, VectorKind, VectorRecord
from app.telemetry.event_links import batch_span

log = logging.getLogger(__name__)

BATCH_SIZE = 64
MAX_ATTEMPTS = 5
MAX_BACKOFF_SECONDS = 300

Target = tuple[VectorKind, UUID]


def target_of(event: Any) -> Target | None:
    """Which row an event may have changed the searchable text of, if any."""
    kind = event.event_type
    if kind in ("CREATED", "UPDATED") and event.aggregate_type == "campaign":
        return VectorKind.CAMPAIGN, event.aggregate_id
    if kind in ("AGENT_CREATED", "AGENT_UPDATED"):
        return VectorKind.AGENT, event.aggregate_id
    if kind in ("MEDIA_READY", "MEDIA_DELETED"):
        return VectorKind.MEDIA, UUID(str(event.payload["assetId"]))
    if kind == "MEMORY_ADDED":
        return VectorKind.MEMORY, UUID(str(event.payload["memoryId"]))
    return None


async def sync_documents(
    conn: AsyncConnection,
    index: VectorIndex,
    embedder: Embedder,
    tenant_id: UUID,
    targets: Iterable[Target],
) -> None:
    """Make the index hold exactly the current documents for ``targets`` of one tenant."""
    by_kind: dict[VectorKind, list[UUID]] = defaultdict(list)
    for kind, row_id in targets:
        by_kind[kind].append(row_id)
    present: list[Document] = []
    for kind, row_ids in by_kind.items():
        documents = await load_documents(conn, tenant_id, kind, row_ids)
        present += documents.values()
        gone = [row_id for row_id in row_ids if row_id not in documents]
        await index.delete(tenant_id, kind, gone)
    if present:
        # Plain embed() is the model's background lane: searches waiting are served first, a
        # chunk at a time (app/stores/embeddings/scheduler.py), and none is charged for it.
        vectors = await embedder.embed([d.text for d in present])
        await index.upsert(
            tenant_id,
            [
                VectorRecord(d.kind, d.row_id, vector, d.text, d.owner_id, d.content_hash)
                for d, vector in zip(present, vectors, strict=True)
            ],
        )


async def run_once(
    engine: AsyncEngine,
    index: VectorIndex,
    embedder: Embedder,
    *,
    batch_size: int = BATCH_SIZE,
    tracer: Tracer | None = None,
) -> int:
    """Claim and process one batch; returns how many events it settled. With ``tracer``, a
    batch that indexes events of traced writes is a span linked to them."""
    async with engine.begin() as conn:
        events = list(
            await conn.execute(
                select(outbox)
                .where(
                    outbox.c.indexed_at.is_(None),
                    outbox.c.index_attempts < MAX_ATTEMPTS,
                    (outbox.c.index_next_at.is_(None)) | (outbox.c.index_next_at <= func.now()),
                )
                .order_by(outbox.c.id)
                .limit(batch_size)
                .with_for_update(skip_locked=True)
            )
        )
        if not events:
            return 0
        # Per tenant, each claimed event's target (several events may share one).
        claims: dict[UUID, dict[int, Target]] = defaultdict(dict)
        done: list[int] = []
        for event in events:
            target = target_of(event)
            if target is None:
                done.append(event.id)  # nothing to index
                continue
            claims[event.tenant_id][event.id] = target
        writes = [(e.id, e.traceparent) for e in events if e.id in claims.get(e.tenant_id, {})]
        attributes = {"chimera.index.documents": sum(len(set(c.values())) for c in claims.values())}
        with batch_span(tracer, "outbox index", writes, attributes) as span:
            for tenant_id, claim in claims.items():
                failed = await _sync_isolating_failures(conn, index, embedder, tenant_id, claim)
                done += [event_id for event_id in claim if event_id not in failed]
                for event_id, error in failed.items():
                    await _retry_later(conn, event_id, error)
                if failed and span is not None:
                    span.set_status(StatusCode.ERROR, next(iter(failed.values())))
        if done:
            await conn.execute(
                update(outbox).where(outbox.c.id.in_(done)).values(indexed_at=func.now())
            )
    return len(events)


async def _sync_isolating_failures(
    conn: AsyncConnection,
    index: VectorIndex,
    embedder: Embedder,
    tenant_id: UUID,
    claim: dict[int, Target],
) -> dict[int, str]:
    """Sync a tenant's targets together; if that fails, one by one, so that one bad row
    only fails its own events. Returns the failed event ids with their error."""
    targets = set(claim.values())
    try:
        await sync_documents(conn, index, embedder, tenant_id, targets)
        return {}
    except Exception as exc:
        if len(targets) == 1:
            return dict.fromkeys(claim, _describe(exc))
    failed_targets: dict[Target, str] = {}
    for target in targets:
        try:
            await sync_documents(conn, index, embedder, tenant_id, [target])
        except Exception as exc:
            failed_targets[target] = _describe(exc)
    return {
        event_id: failed_targets[target]
        for event_id, target in claim.items()
        if target in failed_targets
    }


def _describe(exc: Exception) -> str:
    message = getattr(exc, "message", None) or str(exc)
    return f"{type(exc).__name__}: {message}"[:500]


async def _retry_later(conn: AsyncConnection, event_id: int, error: str) -> None:
    attempts = outbox.c.index_attempts + 1
    backoff = func.least(func.power(2, attempts), MAX_BACKOFF_SECONDS)
    await conn.execute(
        update(outbox)
        .where(outbox.c.id == event_id)
        .values(
            index_attempts=attempts,
            index_error=error,
            index_next_at=func.now() + func.make_interval(0, 0, 0, 0, 0, 0, backoff),
        )
    )
    log.warning("indexing event %s failed, will retry: %s", event_id, error)


async def dead_letters(engine: AsyncEngine) -> int:
    """Events the indexer gave up on: visible in `chimera doctor` and /readyz."""
    async with engine.connect() as conn:
        count = await conn.scalar(
            select(func.count())
            .select_from(outbox)
            .where(outbox.c.indexed_at.is_(None), outbox.c.index_attempts >= MAX_ATTEMPTS)
        )
    return int(count or 0)


async def run_forever(
    engine: AsyncEngine,
    index: VectorIndex,
    embedder: Embedder,
    *,
    idle_seconds: float = 0.5,
    stop: asyncio.Event | None = None,
    tracer: Tracer | None = None,
) -> None:
    """Index until cancelled (or ``stop`` is set): busy while there is work, polling when idle."""
    while stop is None or not stop.is_set():
        try:
            settled = await run_once(engine, index, embedder, tracer=tracer)
        except Exception:  # a store outage must not kill the loop; it tries again
            log.exception("indexer batch failed")
            settled = 0
        if not settled:
            await asyncio.sleep(idle_seconds)
