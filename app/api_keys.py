"""Tenant API keys: long-lived credentials for server-to-server clients.

A key reads `chk_<prefix>_<secret>`. Only its SHA-256 is stored; the prefix, unique, finds
the row and names the key wherever it is shown (listings, the audit trail), so that a key can
be told apart without being known. A key is sent like a token (`Authorization: Bearer chk_...`)
and becomes a Principal of its tenant with the key's role; its rate-limit bucket is the key's.
Creating a key and revoking it are audited (`api_key.create`, `api_key.revoke`), never with
the key or its hash in the entry.

Verifying a key needs its row: a verified key is remembered by this process for a few
seconds, so a busy client costs a statement per key every few seconds, not per request, and
a revocation is in force everywhere within that time (at once on the instance that revoked
it). When a key was last used is recorded the same way: kept here, written once a minute.

A WebSocket authenticates once, in connection_init, and may stay open for hours: each of its
operations, and each event a live subscription (WebSocket or SSE) delivers, checks its key
again against the same remembered answer (`ApiKeys.ensure_valid`), so that a revoked key's
connection stops within that time too, and at once on the instance that revoked it.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from app.auth import Principal, Role
from app.commands.changes import record_audit
from app.errors import BadUserInput, NotFound, StoreUnavailable, Unauthenticated
from app.stores.failures import is_store_failure
from app.stores.postgres.tables import api_key, tenant
from app.validation import NAME_MAX, clean_name

log = logging.getLogger("chimera.api_keys")

KEY = re.compile(r"^chk_([A-Za-z0-9]{12})_([A-Za-z0-9_-]{32,64})$")
# An API key acts as the subject "apikey:<its name>" (the actor of its audit entries).
SUBJECT_PREFIX = "apikey:"
REMEMBERED_SECONDS = 10.0
REMEMBERED_AT_MOST = 10_000
ROLES = (Role.VIEWER, Role.EDITOR, Role.ADMIN)


def looks_like_key(credential: str) -> bool:
    return credential.startswith("chk_")


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class NewKey:
    id: uuid.UUID
    prefix: str
    key: str  # shown once, never stored


def new_key() -> tuple[str, str]:
    """A fresh (prefix, key)."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    prefix = "".join(secrets.choice(alphabet) for _ in range(12))
    return prefix, f"chk_{prefix}_{secrets.token_urlsafe(32)}"


async def create_api_key(
    engine: AsyncEngine, tenant_id: uuid.UUID, *, name: str, role: Role, created_by: str
) -> NewKey:
    """A new key of the tenant, with its ``api_key.create`` audit entry in the same
    transaction: a credential that can act for the tenant is a security event, so no key
    exists without a record of who made it. ``created_by`` is that actor (the CLI passes
    ``operator:chimera-cli``, as other operator entries are named). The entry shows what
    names the key (its name, role and prefix), never the key or its hash: the trail is read
    more widely than the key is meant to be known, and the prefix alone tells keys apart."""
    if role not in ROLES:
        raise BadUserInput("an API key's role is viewer, editor or admin", field="role")
    # The name is the key's subject, so its audit entries' actor: held to the rules of
    # every name people read (no control, bidi override or only invisible characters).
    # The actor column holds 200 characters: "apikey:" and the name must fit in it.
    cleaned = clean_name(name, "name", max_length=NAME_MAX - len(SUBJECT_PREFIX))
    prefix, key = new_key()
    key_id = uuid.uuid4()
    async with engine.begin() as conn:
        await conn.execute(
            insert(api_key).values(
                id=key_id,
                tenant_id=tenant_id,
                name=cleaned,
                role=role.value,
                prefix=prefix,
                secret_hash=digest(key),
                created_by=created_by,
            )
        )
        await record_audit(
            conn,
            tenant_id=tenant_id,
            actor=created_by,
            action="api_key.create",
            entity_type="api_key",
            entity_id=key_id,
            before=None,
            after={"name": cleaned, "role": role.value, "prefix": f"chk_{prefix}"},
        )
    return NewKey(key_id, f"chk_{prefix}", key)


async def revoke_api_key(engine: AsyncEngine, principal: Principal, key_id: uuid.UUID) -> Any:
    """Mark the caller's tenant's key revoked (once), with its audit entry; NOT_FOUND for
    a key of no such id in that tenant. The row, without its hash."""
    shown = [c for c in api_key.c if c.name != "secret_hash"]
    mine = (api_key.c.id == key_id) & (api_key.c.tenant_id == principal.tenant_id)
    async with engine.begin() as conn:
        before = (await conn.execute(select(*shown).where(mine).with_for_update())).first()
        if before is None:
            raise NotFound("No such API key")
        if before.revoked_at is not None:
            return before
        after = (
            await conn.execute(
                update(api_key).where(mine).values(revoked_at=func.now()).returning(*shown)
            )
        ).one()
        await record_audit(
            conn,
            tenant_id=principal.tenant_id,
            actor=principal.subject,
            action="api_key.revoke",
            entity_type="api_key",
            entity_id=key_id,
            before={"revokedAt": None},
            after={"revokedAt": after.revoked_at.isoformat()},
        )
    return after


class ApiKeys:
    """Verifies keys against their rows, remembering recent answers; records last use."""

    def __init__(self, engine: AsyncEngine, timeout: float) -> None:
        self.engine = engine
        self.timeout = timeout
        self._known: dict[str, tuple[Principal | None, str, float]] = {}
        # The prefix of each key verified here, by its id: how a Principal (which names its
        # key by id) finds the remembered answer again.
        self._prefixes: dict[uuid.UUID, str] = {}
        # Until when re-checks of keys already verified are not retried (PostgreSQL was
        # unreachable): a live subscription's events do not each wait for a timeout.
        self._unreadable_until = 0.0
        self._used: dict[uuid.UUID, datetime] = {}

    async def principal(self, key: str) -> Principal:
        """The Principal a key stands for, or UNAUTHENTICATED."""
        match = KEY.fullmatch(key)
        if match is None:
            raise Unauthenticated("The API key is invalid")
        prefix = match.group(1)
        now = time.monotonic()
        known = self._known.get(prefix)
        if known is None or now - known[2] >= REMEMBERED_SECONDS:
            principal, stored_hash, _ = await self._load(api_key.c.prefix == prefix)
            known = self._remember(prefix, principal, stored_hash, now)
        principal, stored_hash, _ = known
        if principal is None or not hmac.compare_digest(stored_hash, digest(key)):
            raise Unauthenticated("The API key is invalid or has been revoked")
        self._used[uuid.UUID(principal.client_id[2:])] = datetime.now(UTC)
        return principal

    async def ensure_valid(self, principal: Principal) -> Principal:
        """The principal of a key verified earlier (an open WebSocket's), unless the key has
        since been revoked (UNAUTHENTICATED); any other principal as it is. The answer is
        the one `principal` remembers, so this costs a statement per key every few seconds
        at most, and none at all for a key in use over HTTP too. With PostgreSQL unreachable
        the key stays accepted (a log line says so), as token revocations do without Redis."""
        if not principal.client_id.startswith("k:"):
            return principal
        key_id = uuid.UUID(principal.client_id[2:])
        now = time.monotonic()
        prefix = self._prefixes.get(key_id)
        known = self._known.get(prefix) if prefix is not None else None
        found: Principal | None
        if known is not None and now - known[2] < REMEMBERED_SECONDS:
            found = known[0]
        elif now < self._unreadable_until:  # a revocation once seen stays in force
            found = known[0] if known is not None else principal
        else:
            try:
                found, stored_hash, prefix = await self._load(api_key.c.id == key_id)
            except StoreUnavailable as exc:
                self._unreadable_until = now + REMEMBERED_SECONDS
                log.warning("API key revocations unreadable, key accepted: %r", exc)
                found = known[0] if known is not None else principal
            else:
                if prefix is not None:
                    self._remember(prefix, found, stored_hash, now)
        if found is None:
            raise Unauthenticated("The API key has been revoked")
        return principal

    def forget(self, prefix: str) -> None:
        """Verify this key against its row on its next use (after a revocation here)."""
        self._known.pop(prefix.removeprefix("chk_"), None)

    def _remember(
        self, prefix: str, principal: Principal | None, stored_hash: str, now: float
    ) -> tuple[Principal | None, str, float]:
        if len(self._known) >= REMEMBERED_AT_MOST:
            self._known.clear()
        if len(self._prefixes) >= REMEMBERED_AT_MOST:
            self._prefixes.clear()
        known = self._known[prefix] = (principal, stored_hash, now)
        if principal is not None:
            self._prefixes[uuid.UUID(principal.client_id[2:])] = prefix
        return known

    async def _load(self, which: Any) -> tuple[Principal | None, str, str | None]:
        """The principal and hash of the key ``which`` selects (None and "" for a key
        revoked or unknown), and its prefix (None when there is no such key)."""
        statement = (
            select(api_key, tenant.c.slug)
            .join(tenant, tenant.c.id == api_key.c.tenant_id)
            .where(which)
        )
        try:
            async with asyncio.timeout(self.timeout), self.engine.connect() as conn:
                row = (await conn.execute(statement)).first()
        except Exception as exc:
            if isinstance(exc, TimeoutError) or is_store_failure(exc):
                raise StoreUnavailable("PostgreSQL", "API keys") from exc
            raise
        if row is None:
            return None, "", None
        if row.revoked_at is not None:
            return None, "", str(row.prefix)
        principal = Principal(
            tenant_id=row.tenant_id,
            tenant_slug=row.slug,
            role=Role(row.role),
            subject=f"{SUBJECT_PREFIX}{row.name}",
            client_id=f"k:{row.id}",
        )
        return principal, str(row.secret_hash), str(row.prefix)

    async def record_use(self) -> int:
        """Write when each key used since the last call was last used; how many keys."""
        used, self._used = self._used, {}
        if not used:
            return 0
        statement = (
            update(api_key)
            .where(api_key.c.id == bindparam("key_id"))
            .values(last_used_at=func.greatest(api_key.c.last_used_at, bindparam("at")))
        )
        rows: list[dict[str, Any]] = [{"key_id": k, "at": at} for k, at in used.items()]
        try:
            async with self.engine.begin() as conn:
                await conn.execute(statement, rows)
        except BaseException:
            for key_id, at in used.items():  # kept for the next round
                self._used[key_id] = max(at, self._used.get(key_id, at))
            raise
        return len(rows)

    async def record_use_forever(self, every: float = 60.0) -> None:
        while True:
            await asyncio.sleep(every)
            try:
                await self.record_use()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the next round writes what this one could not
                log.warning("API key last use not recorded: %r", exc)
