"""Revoked bearer tokens: a JWT's id (`jti`) kept in Redis until the token would expire.

A JWT is valid until it expires, which for a leaked token is too long. `chimera token revoke`
writes the token's id under its tenant's prefix, to expire when the token does: past that,
the signature check refuses it anyway, so the list never outgrows the tokens still alive.

Every instance checks a token against the list when it first sees it, then remembers the
answer for a few seconds: a client's requests cost a Redis call every few seconds, not one
each, and a revocation is in force everywhere within that time. With Redis unreachable the
check lets tokens through (a log line says so), as reads go on without Redis elsewhere.
"""

from __future__ import annotations

import asyncio
import logging
import time
from uuid import UUID

from redis.asyncio import Redis

from app.auth import Principal
from app.errors import Unauthenticated
from app.stores.failures import is_store_failure
from app.stores.redis import keys

log = logging.getLogger("chimera.auth")

CHECKED_FOR_SECONDS = 5.0
CHECKED_AT_MOST = 10_000


def revoked_key(tenant_id: UUID, token_id: str) -> str:
    return f"{keys.tenant_prefix(tenant_id)}revoked-token:{token_id}"


async def revoke_token(redis: Redis, tenant_id: UUID, token_id: str, expires_at: float) -> bool:
    """Put a token on its tenant's revocation list until it expires; False when it has
    expired already (nothing to do)."""
    remaining_ms = int((expires_at - time.time()) * 1000)
    if remaining_ms <= 0:
        return False
    await redis.set(revoked_key(tenant_id, token_id), b"1", px=remaining_ms + 1000)
    return True


class Revocations:
    def __init__(self, redis: Redis, timeout: float) -> None:
        self.redis = redis
        self.timeout = timeout
        self._checked: dict[tuple[UUID, str], tuple[bool, float]] = {}

    async def ensure_valid(self, principal: Principal) -> Principal:
        """The principal, unless its token was revoked (UNAUTHENTICATED)."""
        token_id = principal.token_id
        if token_id is None:
            return principal  # tokens minted before token ids existed cannot be revoked
        now = time.monotonic()
        key = (principal.tenant_id, token_id)
        checked = self._checked.get(key)
        if checked is None or now - checked[1] >= CHECKED_FOR_SECONDS:
            checked = (await self._is_revoked(principal.tenant_id, token_id), now)
            if len(self._checked) >= CHECKED_AT_MOST:
                self._checked.clear()
            self._checked[key] = checked
        if checked[0]:
            raise Unauthenticated("The bearer token has been revoked")
        return principal

    async def _is_revoked(self, tenant_id: UUID, token_id: str) -> bool:
        try:
            async with asyncio.timeout(self.timeout):
                return bool(await self.redis.exists(revoked_key(tenant_id, token_id)))
        except Exception as exc:
            if isinstance(exc, TimeoutError) or is_store_failure(exc):
                log.warning("token revocations unreadable, token accepted: %r", exc)
                return False
            raise
