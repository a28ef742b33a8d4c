"""Which document a request runs, when it names one by hash.

Two kinds of persisted document, as the big GraphQL gateways have them:
- **Automatic persisted queries** (Apollo's APQ protocol): a client sends only
  ``extensions.persistedQuery.sha256Hash``; an unknown hash is PERSISTED_QUERY_NOT_FOUND, and
  the client sends the document with its hash once, which registers it. Kept in Redis, per
  tenant, so every instance knows what any one registered, and no tenant can learn from a
  hit what another one runs.
- **Trusted documents** (`chimera documents add`, from a client's build output): kept in
  PostgreSQL. With ``CHIMERA_TRUSTED_DOCUMENTS=only`` nothing else runs: not a document sent
  as text unless its hash is registered, not an APQ registration. A hash names exactly one
  document text, so its parse, validation, plan and cost tree are each made once and cached
  under that text like any other document's.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import OrderedDict
from typing import Any, Literal
from uuid import UUID

from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.documents.manifest import sha256
from app.errors import (
    BadUserInput,
    Forbidden,
    PersistedQueryNotFound,
    PersistedQueryNotSupported,
    StoreUnavailable,
)
from app.stores.failures import is_store_failure
from app.stores.postgres.tables import trusted_document
from app.stores.redis import keys

TrustedMode = Literal["off", "allow", "only"]
HASH = re.compile(r"^[0-9a-fA-F]{64}$")
KEPT = 4096
MISSING_FOR_SECONDS = 10.0  # an unknown hash is looked up again after this


def persisted_hash(extensions: object) -> str | None:
    """The document hash a request's extensions name, or None; BAD_USER_INPUT when they
    name one the wrong way."""
    if not isinstance(extensions, dict) or "persistedQuery" not in extensions:
        return None
    persisted = extensions["persistedQuery"]
    if (
        not isinstance(persisted, dict)
        or persisted.get("version") != 1
        or not isinstance(persisted.get("sha256Hash"), str)
        or not HASH.fullmatch(persisted["sha256Hash"])
    ):
        raise BadUserInput(
            "extensions.persistedQuery must be {version: 1, sha256Hash: <64 hex digits>}",
            argument="extensions",
        )
    digest: str = persisted["sha256Hash"].lower()
    return digest


class PersistedDocuments:
    def __init__(
        self,
        engine: AsyncEngine,
        redis: Redis,
        *,
        mode: TrustedMode,
        automatic: bool,
        ttl_seconds: int,
        timeout: float,
    ) -> None:
        self.engine = engine
        self.redis = redis
        self.mode = mode
        self.automatic = automatic and mode != "only"
        self.ttl_seconds = ttl_seconds
        self.timeout = timeout
        self._trusted: OrderedDict[str, tuple[str | None, float]] = OrderedDict()

    async def resolve(self, tenant_id: UUID, query: str | None, extensions: Any) -> str | None:
        """The document to run: the request's own text, or the one its hash names. Raises
        the refusal the protocol defines otherwise."""
        digest = persisted_hash(extensions)
        if query is not None:
            if digest is not None and sha256(query) != digest:
                raise BadUserInput(
                    "provided sha does not match query: extensions.persistedQuery.sha256Hash "
                    "must be the SHA-256 of the query text",
                    argument="extensions",
                )
            if self.mode == "only":
                if await self.trusted(digest or sha256(query)) is None:
                    raise Forbidden(
                        "This server runs registered documents only; this one is not "
                        "registered (chimera documents add)",
                        reason="TRUSTED_DOCUMENTS_ONLY",
                    )
            elif digest is not None and self.automatic:
                await self._remember(tenant_id, digest, query)
            return query
        if digest is None:
            return None
        body = await self.trusted(digest) if self.mode != "off" else None
        if body is None and self.automatic:
            body = await self._recall(tenant_id, digest)
        if body is not None:
            return body
        if self.mode != "only" and not self.automatic:
            raise PersistedQueryNotSupported("PersistedQueryNotSupported")
        raise PersistedQueryNotFound("PersistedQueryNotFound")

    async def trusted(self, digest: str) -> str | None:
        """A registered document's text, from this process's memory once read."""
        now = time.monotonic()
        known = self._trusted.get(digest)
        if known is not None:
            body, at = known
            if body is not None or now - at < MISSING_FOR_SECONDS:
                self._trusted.move_to_end(digest)
                return body
        try:
            async with asyncio.timeout(self.timeout), self.engine.connect() as conn:
                body = await conn.scalar(
                    select(trusted_document.c.body).where(trusted_document.c.id == digest)
                )
        except Exception as exc:
            if isinstance(exc, TimeoutError) or is_store_failure(exc):
                raise StoreUnavailable("PostgreSQL", "registered documents") from exc
            raise
        self._trusted[digest] = (body, now)
        if len(self._trusted) > KEPT:
            self._trusted.popitem(last=False)
        return body

    async def _remember(self, tenant_id: UUID, digest: str, query: str) -> None:
        try:
            async with asyncio.timeout(self.timeout):
                await self.redis.set(
                    keys.persisted_query(tenant_id, digest), query, ex=self.ttl_seconds
                )
        except Exception as exc:
            if isinstance(exc, TimeoutError) or is_store_failure(exc):
                return  # the document still runs; the client will simply register it again
            raise

    async def _recall(self, tenant_id: UUID, digest: str) -> str | None:
        try:
            async with asyncio.timeout(self.timeout):
                found = await self.redis.get(keys.persisted_query(tenant_id, digest))
        except Exception as exc:
            if isinstance(exc, TimeoutError) or is_store_failure(exc):
                return None  # not found: the client sends the text, which runs
            raise
        if found is None:
            return None
        return found.decode() if isinstance(found, bytes) else str(found)
