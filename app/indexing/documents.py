"""What each searchable row turns into: its text, its owner and a digest of that text.

The digest is what lets the reconciler tell a stale vector from a current one without
re-embedding anything; it changes exactly when the embedded text changes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncConnection

from app.stores.postgres.tables import agent, agent_memory, campaign, media_asset
from app.stores.vectors.port import VectorKind


@dataclass(frozen=True)
class Document:
    kind: VectorKind
    row_id: UUID
    text: str
    owner_id: UUID | None
    content_hash: str


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _text(kind: VectorKind, row: Any) -> tuple[str, UUID | None]:
    if kind is VectorKind.CAMPAIGN:
        return f"{row.name}. {row.goal}".strip(), None
    if kind is VectorKind.AGENT:
        return f"{row.name}. {row.persona}".strip(), None
    if kind is VectorKind.MEDIA:
        return f"{row.filename}. {row.caption}".strip(), row.campaign_id
    return str(row.text), row.agent_id


TABLES: dict[VectorKind, Table] = {
    VectorKind.CAMPAIGN: campaign,
    VectorKind.AGENT: agent,
    VectorKind.MEDIA: media_asset,
    VectorKind.MEMORY: agent_memory,
}


def _indexable(kind: VectorKind) -> list[Any]:
    # Media is searchable once its upload is confirmed; a PENDING asset may never arrive.
    return [media_asset.c.status == "READY"] if kind is VectorKind.MEDIA else []


async def load_documents(
    conn: AsyncConnection, tenant_id: UUID, kind: VectorKind, row_ids: Sequence[UUID] | None
) -> dict[UUID, Document]:
    """Current documents of a tenant and kind: of ``row_ids``, or all when None."""
    table = TABLES[kind]
    query = select(table).where(table.c.tenant_id == tenant_id, *_indexable(kind))
    if row_ids is not None:
        query = query.where(table.c.id.in_(row_ids))
    documents = {}
    for row in await conn.execute(query):
        text, owner = _text(kind, row)
        documents[row.id] = Document(kind, row.id, text, owner, digest(text))
    return documents
