"""The vector index port, shared by the pgvector and Weaviate adapters and their contract tests.

Every call names the tenant: an adapter must keep tenants apart on its own (a tenant column
in pgvector, a native tenant shard in Weaviate), because nothing above it can filter hits
it should never have returned. Object ids in the index are deterministic (UUID5 of tenant,
kind and row id), so indexing the same row twice overwrites rather than duplicates.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

OBJECT_NAMESPACE = uuid.UUID("5b7f9a8e-3c1d-4e2f-9a6b-0c4d8e2f1a37")

DIMENSIONS = 384  # all-MiniLM-L6-v2; an index built for another model must be rebuilt


class VectorKind(StrEnum):
    CAMPAIGN = "campaign"  # a campaign's name and goal
    AGENT = "agent"  # an agent's name and persona
    MEDIA = "media"  # a media asset's filename and caption
    MEMORY = "memory"  # an agent memory's text


def object_uuid(tenant_id: uuid.UUID, kind: VectorKind, row_id: uuid.UUID) -> uuid.UUID:
    return uuid.uuid5(OBJECT_NAMESPACE, f"{tenant_id}:{kind.value}:{row_id}")


@dataclass(frozen=True)
class VectorRecord:
    kind: VectorKind
    row_id: uuid.UUID
    vector: Sequence[float]
    text: str
    # The row this one hangs off, for filtered searches: a media asset's campaign, a
    # memory's agent. None for campaigns and agents.
    owner_id: uuid.UUID | None = None
    # A digest of the text the vector was made from: how drift is detected without
    # re-embedding everything.
    content_hash: str = ""


@dataclass(frozen=True)
class VectorQuery:
    vector: Sequence[float]
    kinds: tuple[VectorKind, ...]
    limit: int
    owner_id: uuid.UUID | None = None
    # Hybrid search: when set, adapters that support keyword scoring blend it in (Weaviate's
    # BM25 + vector); others search by vector alone.
    text: str | None = None
    exclude_row_id: uuid.UUID | None = None


@dataclass(frozen=True)
class VectorHit:
    kind: VectorKind
    row_id: uuid.UUID
    score: float  # higher is closer; cosine similarity for pure vector search


@dataclass(frozen=True)
class IndexedEntry:
    row_id: uuid.UUID
    content_hash: str


class VectorIndex(Protocol):
    name: str

    async def ensure_ready(self) -> None:
        """Create what the index needs (extension, tables, collections); idempotent."""
        ...

    async def upsert(self, tenant_id: uuid.UUID, records: Sequence[VectorRecord]) -> None:
        """Insert or replace records, in one batch where the store allows."""
        ...

    async def delete(
        self, tenant_id: uuid.UUID, kind: VectorKind, row_ids: Sequence[uuid.UUID]
    ) -> None:
        """Remove records; missing ones are not an error."""
        ...

    async def search(self, tenant_id: uuid.UUID, query: VectorQuery) -> list[VectorHit]:
        """The closest records of the tenant, best first, at most ``query.limit``."""
        ...

    async def search_many(
        self, tenant_id: uuid.UUID, queries: Sequence[VectorQuery]
    ) -> list[list[VectorHit]]:
        """Many searches in one round trip (or one concurrent batch), results in order."""
        ...

    async def similar_to(
        self,
        tenant_id: uuid.UUID,
        kind: VectorKind,
        row_ids: Sequence[uuid.UUID],
        kinds: tuple[VectorKind, ...],
        limit: int,
    ) -> dict[uuid.UUID, list[VectorHit]]:
        """ "More like this" for many indexed rows at once, each excluding itself; rows not
        in the index are absent from the result."""
        ...

    async def entries(self, tenant_id: uuid.UUID, kind: VectorKind) -> list[IndexedEntry]:
        """Everything indexed for a tenant and kind, for drift checks."""
        ...

    async def tenants(self) -> list[uuid.UUID]:
        """Tenants that have anything indexed."""
        ...

    async def ping(self) -> str:
        """A one-line description, or raise StoreUnavailable."""
        ...

    async def close(self) -> None: ...
