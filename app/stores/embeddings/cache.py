"""Search texts' vectors kept in Redis, so a text searched again is not embedded again.

Shared by every instance; kept per tenant (a fast answer must not tell one tenant what
another searched for) and per model (a new model never reads an old one's vectors); bounded
by a TTL and by Redis's memory policy. Vectors are float32 bytes: 1.5 KB for 384 dimensions.
A Redis failure is a miss, never an error: the model is still there to answer.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from uuid import UUID

import numpy as np
from redis.asyncio import Redis

from app.stores.redis import keys

log = logging.getLogger(__name__)


def _key(tenant_id: UUID, model: str, text: str) -> str:
    return keys.embedding(tenant_id, hashlib.sha256(f"{model}\0{text}".encode()).hexdigest())


async def cached_vectors(
    redis: Redis, tenant_id: UUID, model: str, texts: Sequence[str]
) -> list[list[float] | None]:
    """The cached vector of each text, None where there is none (one MGET)."""
    try:
        values = await redis.mget([_key(tenant_id, model, t) for t in texts])
    except Exception:
        log.warning("embedding cache unreadable; embedding again", exc_info=True)
        return [None] * len(texts)
    return [
        np.frombuffer(v, dtype=np.float32).tolist() if isinstance(v, bytes) else None
        for v in values
    ]


async def keep_vectors(
    redis: Redis,
    tenant_id: UUID,
    model: str,
    texts: Sequence[str],
    vectors: Sequence[list[float]],
    ttl_seconds: int,
) -> None:
    try:
        async with redis.pipeline(transaction=False) as pipe:
            for text, vector in zip(texts, vectors, strict=True):
                value = np.asarray(vector, dtype=np.float32).tobytes()
                pipe.set(_key(tenant_id, model, text), value, ex=ttl_seconds)
            await pipe.execute()
    except Exception:
        log.warning("embedding cache not written", exc_info=True)
