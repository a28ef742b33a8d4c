"""Semantic search through loaders: texts embedded in one model call per tick, and the
searches of a whole request level sent to the vector index as one batch."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

from app.errors import StoreUnavailable
from app.stores.vectors.port import VectorHit, VectorKind, VectorQuery
from loaders.base import LoaderContext, TenantLoader


class EmbeddingByTextLoader(TenantLoader[str, list[float]]):
    store = "Embedder"

    async def fetch(self, keys: Sequence[str]) -> list[list[float]]:
        if self.ctx.embedder is None:
            raise StoreUnavailable("Embedder", "no embedding model is loaded; search by vector")
        return await self.ctx.embedder.embed(list(keys))


@dataclass(frozen=True)
class SearchKey:
    """One search: by text (embedded here) or by a vector the client sent."""

    kinds: tuple[VectorKind, ...]
    limit: int
    text: str | None = None
    vector: tuple[float, ...] | None = None
    owner_id: UUID | None = None


class VectorHitsByQueryLoader(TenantLoader[SearchKey, list[VectorHit]]):
    store = "VectorIndex"

    def __init__(self, ctx: LoaderContext, embeddings: EmbeddingByTextLoader) -> None:
        super().__init__(ctx)
        self.embeddings = embeddings

    async def fetch(self, keys: Sequence[SearchKey]) -> list[list[VectorHit]]:
        texts = [k.text for k in keys if k.vector is None and k.text is not None]
        embedded = dict(zip(texts, await self.embeddings.load_many(texts), strict=True))
        queries = [
            VectorQuery(
                vector=list(k.vector) if k.vector is not None else embedded[k.text or ""],
                kinds=k.kinds,
                limit=k.limit,
                owner_id=k.owner_id,
                text=k.text,
            )
            for k in keys
        ]
        return await self.ctx.vectors.search_many(self.tenant_id, queries)


class SimilarCampaignsByCampaignLoader(TenantLoader[tuple[UUID, int], list[VectorHit]]):
    store = "VectorIndex"

    async def fetch(self, keys: Sequence[tuple[UUID, int]]) -> list[list[VectorHit]]:
        by_limit: dict[int, list[UUID]] = defaultdict(list)
        for campaign_id, limit in keys:
            by_limit[limit].append(campaign_id)
        found: dict[tuple[UUID, int], list[VectorHit]] = {}
        for limit, campaign_ids in by_limit.items():  # one call per distinct limit
            hits = await self.ctx.vectors.similar_to(
                self.tenant_id, VectorKind.CAMPAIGN, campaign_ids, (VectorKind.CAMPAIGN,), limit
            )
            for campaign_id in campaign_ids:
                found[(campaign_id, limit)] = hits.get(campaign_id, [])
        return [found[key] for key in keys]
