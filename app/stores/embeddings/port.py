"""The embedder port: text in, unit-length vectors out (so cosine similarity is a dot product)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class Embedder(Protocol):
    name: str
    dimensions: int

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One L2-normalised vector per text, in order. Runs off the event loop."""
        ...
