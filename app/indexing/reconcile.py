"""Drift between PostgreSQL and the vector index: found by comparing text digests, repaired by
re-embedding what is missing or stale and deleting what no longer has a row."""

from __future__ import annotations

from dataclasses import dataclass, field
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.indexing.documents import load_documents
from app.indexing.indexer import sync_documents
from app.stores.embeddings.port import Embedder
from app.stores.postgres.tables import tenant
from app.stores.vectors.port import VectorIndex, VectorKind


@dataclass
class Drift:
    tenant_id: UUID
    kind: VectorKind
    missing: list[UUID] = field(default_factory=list)
    stale: list[UUID] = field(default_factory=list)
    orphaned: list[UUID] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.missing) + len(self.stale) + len(self.orphaned)


async def find_drift(engine: AsyncEngine, index: VectorIndex) -> list[Drift]:
    async with engine.connect() as conn:
        tenants = {row.id for row in await conn.execute(select(tenant.c.id))}
    tenants |= set(await index.tenants())
    drifts = []
    for tenant_id in sorted(tenants):
        for kind in VectorKind:
            async with engine.connect() as conn:
                expected = await load_documents(conn, tenant_id, kind, None)
            actual = {e.row_id: e.content_hash for e in await index.entries(tenant_id, kind)}
            drift = Drift(
                tenant_id,
                kind,
                missing=sorted(set(expected) - set(actual)),
                stale=sorted(
                    r for r in set(expected) & set(actual) if expected[r].content_hash != actual[r]
                ),
                orphaned=sorted(set(actual) - set(expected)),
            )
            if drift.total:
                drifts.append(drift)
    return drifts


async def repair(engine: AsyncEngine, index: VectorIndex, embedder: Embedder) -> list[Drift]:
    """Fix every drift found; returns what was fixed."""
    drifts = await find_drift(engine, index)
    for drift in drifts:
        targets = [(drift.kind, r) for r in drift.missing + drift.stale + drift.orphaned]
        async with engine.connect() as conn:
            await sync_documents(conn, index, embedder, drift.tenant_id, targets)
    return drifts
