"""The embedder port: text in, unit-length vectors out (so cosine similarity is a dot product)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable
from uuid import UUID


class Embedder(Protocol):
    name: str
    dimensions: int

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One L2-normalised vector per text, in order. Runs off the event loop.

        Background work (the indexer, repairs): not charged to anyone, and served after the
        searches of requests."""
        ...


@dataclass
class EmbedMeter:
    """The tokens one request has had embedded so far, against its per-request bound."""

    tokens: int = 0


@runtime_checkable
class TenantEmbedder(Embedder, Protocol):
    """An embedder that a request's search texts can be given to safely: bounded per request
    and per tenant, fair between tenants, and stopped when the request is cancelled.

    Text search uses ``embed_for`` when the embedder has it; a plain :class:`Embedder` is
    called with ``embed`` and has none of these guards."""

    async def embed_for(
        self, tenant_id: UUID, texts: Sequence[str], meter: EmbedMeter
    ) -> list[list[float]]:
        """``embed`` for one tenant's request. Raises a ChimeraError with code
        OPERATION_LIMIT, having embedded nothing, when the texts would take ``meter`` over the
        per-request bound or the tenant over its budget; otherwise adds their tokens to
        ``meter``. Cancelling the caller stops the work within about one layer of the model."""
        ...
