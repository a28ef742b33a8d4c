"""The audit rows of people's interventions on tasks (cancelTask, retryTask).

Task state lives in Redis (ADR 0023), so its change cannot share a transaction with the audit
row: the row is appended right after the script changed the task, under the task's agent (its
history shows it). Enqueues and a runtime's claims and reports are not audited: like
engagement, they are high volume, and the task itself and its events are their history.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from app.auth import Principal
from app.commands.changes import jsonable
from app.queue.records import TaskRecord
from app.stores.postgres.tables import audit_log

AUDITED = ("status", "attempts", "last_error", "finished_at")


def _state(record: TaskRecord) -> dict[str, Any]:
    shown = asdict(record)
    state: dict[str, Any] = jsonable({name: shown[name] for name in AUDITED})
    return state


async def audit_task_change(
    engine: AsyncEngine, principal: Principal, action: str, before: TaskRecord, after: TaskRecord
) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            insert(audit_log).values(
                tenant_id=principal.tenant_id,
                actor=principal.subject,
                action=action,
                entity_type="task",
                entity_id=after.id,
                aggregate_type="agent",
                aggregate_id=after.agent_id,
                before=_state(before),
                after=_state(after),
            )
        )
