"""Handing work to agents and managing it: enqueueTask, cancelTask, retryTask."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.scalars import JSON

from app.commands.tasks import audit_task_change
from app.cost.directives import REDIS
from app.errors import Conflict, NotFound
from app.ids import decode_id
from app.queue.core import DEFAULT_MAX_ATTEMPTS, DEFAULT_PRIORITY, NewTask, TaskQueue
from resolvers.info import Info
from resolvers.permissions import IsAdmin, IsEditor
from resolvers.tasks.types import Task


def queue_of(info: Info) -> TaskQueue:
    ctx = info.context
    principal = ctx.require_principal()
    settings = ctx.settings
    return TaskQueue(
        ctx.stores.redis,
        principal.tenant_id,
        settings.store_timeout_seconds,
        replicas=settings.task_replicas,
        replica_timeout_ms=settings.task_replica_timeout_ms,
    )


@strawberry.input
class EnqueueTaskInput:
    agent_id: strawberry.ID
    kind: str = strawberry.field(description="1-100 of letters, digits and _ . : -")
    idempotency_key: str = strawberry.field(
        description="Unique per tenant for a day: a retry with the same key and input returns "
        "the original task; with another input it is IDEMPOTENCY_KEY_REUSED."
    )
    payload: JSON | None = strawberry.field(default=None, description="At most 64 KiB of JSON.")
    campaign_id: strawberry.ID | None = None
    priority: int = strawberry.field(default=DEFAULT_PRIORITY, description="0 to 100.")
    not_before: datetime | None = strawberry.field(
        default=None, description="Not claimed before this moment (at most 30 days ahead)."
    )
    max_attempts: int = strawberry.field(default=DEFAULT_MAX_ATTEMPTS, description="1 to 25.")


@strawberry.input
class TaskIdInput:
    id: strawberry.ID


@strawberry.type
class TaskPayload:
    task: Task


async def _intervene(info: Info, global_id: str, action: str) -> TaskPayload:
    """A person's cancel or retry: the script's change, then its audit row."""
    ctx = info.context
    pk = decode_id(global_id, "Task")
    before = await ctx.loaders.task_by_id.load(pk)
    if before is None:
        raise NotFound("Task not found", argument="id")
    queue = queue_of(info)
    after = await (queue.cancel(pk) if action == "task.cancel" else queue.retry(pk))
    await audit_task_change(ctx.stores.engine, ctx.require_principal(), action, before, after)
    ctx.loaders.task_by_id.clear(pk).prime(pk, after)
    return TaskPayload(task=Task.of(after))


@strawberry.type
class TaskMutations:
    @strawberry.mutation(
        permission_classes=[IsEditor],
        directives=[REDIS],
        description="Queue work for an agent (editors and admins). A RETIRED agent takes none.",
    )
    async def enqueue_task(self, info: Info, input: EnqueueTaskInput) -> TaskPayload | None:
        loaders = info.context.loaders
        agent_id = decode_id(input.agent_id, "Agent")
        campaign_id = decode_id(input.campaign_id, "Campaign") if input.campaign_id else None
        agent = await loaders.agent_by_id.load(agent_id)
        if agent is None:
            raise NotFound("Agent not found", field="agentId")
        if agent["status"] == "RETIRED":
            raise Conflict("A RETIRED agent takes no tasks", field="agentId")
        if campaign_id is not None and await loaders.campaign_by_id.load(campaign_id) is None:
            raise NotFound("Campaign not found", field="campaignId")
        task = NewTask(
            agent_id=agent_id,
            campaign_id=campaign_id,
            kind=input.kind,
            payload=input.payload,
            priority=input.priority,
            max_attempts=input.max_attempts,
            not_before=input.not_before,
        )
        record, _created = await queue_of(info).enqueue(task, input.idempotency_key)
        loaders.task_by_id.clear(record.id).prime(record.id, record)
        return TaskPayload(task=Task.of(record))

    @strawberry.mutation(
        permission_classes=[IsEditor],
        directives=[REDIS],
        description="Stop a QUEUED or RUNNING task (a runtime's lease on it becomes void), or "
        "dismiss a DEAD one. A finished task is CONFLICT.",
    )
    async def cancel_task(self, info: Info, input: TaskIdInput) -> TaskPayload | None:
        return await _intervene(info, input.id, "task.cancel")

    @strawberry.mutation(
        permission_classes=[IsAdmin],
        directives=[REDIS],
        description="Queue a DEAD task again with fresh attempts (admins). Any other is CONFLICT.",
    )
    async def retry_task(self, info: Info, input: TaskIdInput) -> TaskPayload | None:
        return await _intervene(info, input.id, "task.retry")
