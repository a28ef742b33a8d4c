"""Audit and outbox rows, written beside the change they describe."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import Row, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from app.auth import Principal
from app.stores.postgres.tables import audit_log, outbox
from app.telemetry.event_links import current_traceparent


def jsonable(value: Any) -> Any:
    """Row values as JSON: ids and money as strings, times as ISO 8601."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, UUID | Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def snapshot(row: Row[Any] | None) -> dict[str, Any] | None:
    return None if row is None else jsonable(dict(row._mapping))


async def record_audit(
    conn: AsyncConnection,
    *,
    tenant_id: UUID,
    actor: str,
    action: str,
    entity_type: str,
    entity_id: UUID,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    aggregate_type: str | None = None,
    aggregate_id: UUID | None = None,
) -> None:
    """Append one audit row in the caller's transaction. Alone (no outbox event) for what no
    subscriber follows: API keys, the trail's own pruning."""
    await conn.execute(
        insert(audit_log).values(
            tenant_id=tenant_id,
            actor=actor,
            action=action,
            entity_type=entity_type,
            entity_id=entity_id,
            aggregate_type=aggregate_type or entity_type,
            aggregate_id=aggregate_id or entity_id,
            before=before,
            after=after,
        )
    )


async def record_change(
    conn: AsyncConnection,
    principal: Principal,
    *,
    action: str,
    entity_type: str,
    entity_id: UUID,
    before: Row[Any] | None,
    after: Row[Any] | None,
    event_type: str,
    aggregate_type: str | None = None,
    aggregate_id: UUID | None = None,
    payload: dict[str, Any] | None = None,
) -> None:
    """Append the audit row and the outbox event for one change, in the caller's transaction.
    Both name the aggregate the change belongs to (a membership's or a transaction's campaign),
    which is whose history shows it."""
    await record_audit(
        conn,
        tenant_id=principal.tenant_id,
        actor=principal.subject,
        action=action,
        entity_type=entity_type,
        entity_id=entity_id,
        aggregate_type=aggregate_type,
        aggregate_id=aggregate_id,
        before=snapshot(before),
        after=snapshot(after),
    )
    await emit_event(
        conn,
        principal,
        aggregate_type=aggregate_type or entity_type,
        aggregate_id=aggregate_id or entity_id,
        event_type=event_type,
        payload=payload,
    )


async def emit_event(
    conn: AsyncConnection,
    principal: Principal,
    *,
    aggregate_type: str,
    aggregate_id: UUID,
    event_type: str,
    payload: dict[str, Any] | None = None,
) -> None:
    """Append an outbox event alone: for high-volume changes (counters) that are not audited."""
    await conn.execute(
        insert(outbox).values(
            tenant_id=principal.tenant_id,
            aggregate_type=aggregate_type,
            aggregate_id=aggregate_id,
            event_type=event_type,
            payload=jsonable(payload or {}),
            traceparent=current_traceparent(),
        )
    )
