"""Retention of the audit trail: removing entries older than a date, and saying so.

The log is append-only (a trigger refuses every UPDATE and DELETE). Pruning sets the
transaction-local ``chimera.audit_prune_before``, the one thing that trigger lets a DELETE
through for (migration 0006), deletes the older rows and, in the same transaction, appends
one ``audit.prune`` entry per tenant it touched: the trail records its own trimming.
"""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.commands.changes import record_audit
from app.stores.postgres.tables import audit_log

ACTOR = "operator:chimera-audit-prune"


async def prune_audit(engine: AsyncEngine, before: datetime) -> dict[uuid.UUID, int]:
    """Entries older than ``before`` deleted, counted per tenant."""
    async with engine.begin() as conn:
        await conn.execute(
            select(func.set_config("chimera.audit_prune_before", before.isoformat(), True))
        )
        deleted = Counter(
            row.tenant_id
            for row in await conn.execute(
                delete(audit_log)
                .where(audit_log.c.created_at < before)
                .returning(audit_log.c.tenant_id)
            )
        )
        for tenant_id, count in deleted.items():
            await record_audit(
                conn,
                tenant_id=tenant_id,
                actor=ACTOR,
                action="audit.prune",
                entity_type="tenant",
                entity_id=tenant_id,
                before=None,
                after={"prunedBefore": before.isoformat(), "deleted": count},
            )
    return dict(deleted)
