"""What an agent runtime calls with its agent token: claim work, keep its lease, report back.

At least once: a claim holds a task for ``leaseSeconds``; a runtime that stops heartbeating
(killed, hung, cut off) loses it, and the task is handed to the next claim. Fenced: every
call after the lease carries its token, and a token whose lease ended gets LEASE_EXPIRED
and changes nothing, so a slow runtime can never complete a task another one now holds.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime
from uuid import UUID

import strawberry
from strawberry.scalars import JSON

from app.cost.directives import REDIS, ListSize
from app.errors import BadUserInput, Forbidden
from app.events.hub import TooManySubscriptions
from app.ids import decode_id
from app.queue.core import CLAIM_MAX, DEFAULT_LEASE_SECONDS, Claimed, TaskQueue
from resolvers.info import Info
from resolvers.permissions import IsAgentRuntime
from resolvers.tasks.mutations import TaskPayload, queue_of
from resolvers.tasks.types import Task

MAX_WAIT_SECONDS = 30
POLL_SECONDS = 0.5
WAKING = frozenset({"TASK_QUEUED", "TASK_FAILED"})


@strawberry.input
class ClaimTasksInput:
    max: int = strawberry.field(default=1, description="1 to 100 tasks.")
    lease_seconds: int = strawberry.field(
        default=DEFAULT_LEASE_SECONDS, description="1 to 3600; renew with heartbeatTask."
    )
    wait_seconds: int = strawberry.field(
        default=0,
        description="0 to 30: with nothing to claim, wait this long for work to arrive (a new "
        "task, a retry or a delay coming due) instead of answering empty at once.",
    )


@strawberry.type(description="A claimed task and the token that proves the claim.")
class TaskLease:
    task: Task
    lease_token: str = strawberry.field(
        description="Pass it to heartbeatTask, completeTask and failTask; secret."
    )
    expires_at: datetime


@strawberry.type
class ClaimTasksPayload:
    leases: list[TaskLease] = strawberry.field(directives=[ListSize(assumed_size=CLAIM_MAX)])


@strawberry.input
class HeartbeatTaskInput:
    id: strawberry.ID
    lease_token: str
    lease_seconds: int = strawberry.field(
        default=DEFAULT_LEASE_SECONDS, description="The lease runs this long from now."
    )


@strawberry.input
class CompleteTaskInput:
    id: strawberry.ID
    lease_token: str
    result: JSON | None = strawberry.field(default=None, description="At most 64 KiB of JSON.")


@strawberry.input
class FailTaskInput:
    id: strawberry.ID
    lease_token: str
    error: str = strawberry.field(description="At most 2,000 characters.")
    retryable: bool = strawberry.field(
        default=True,
        description="Retried after an exponential backoff with jitter until maxAttempts, then "
        "DEAD; not retryable: FAILED at once.",
    )


def runtime_agent(info: Info) -> UUID:
    """The agent the caller's token is bound to (IsAgentRuntime lets only those through)."""
    agent = info.context.require_principal().agent_id
    if agent is None:
        raise Forbidden(IsAgentRuntime.message)
    return agent


async def claim_when_ready(
    info: Info, queue: TaskQueue, agent: UUID, at_most: int, lease: int, wait: int
) -> Claimed:
    """Claim again whenever work may have arrived, until some is claimed or ``wait`` ends.

    The wait listens to the tenant's agent stream through this instance's fan-out (one Redis
    reader per tenant however many runtimes wait, and no connection held per waiter), and
    wakes for this agent's TASK_QUEUED and TASK_FAILED events (a retry queued) or when the
    agent's next delayed task comes due. Subscribing before claiming again closes the gap in
    which a task queued after the first claim would be missed.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    try:
        subscriber = await info.context.events.subscribe(queue.tenant_id, "agent")
    except TooManySubscriptions:
        subscriber = None  # the tenant's fan-out is full here: poll instead
    try:
        while True:
            claimed = await queue.claim(agent, at_most, lease)
            remaining = deadline - loop.time()
            if claimed.leases or remaining <= 0:
                return claimed
            if claimed.next_due_ms is not None:
                remaining = min(remaining, claimed.next_due_ms / 1000 + 0.01)
            if subscriber is None:
                await asyncio.sleep(min(remaining, POLL_SECONDS))
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    while not any(
                        event.agent_id == agent and event.type in WAKING
                        for event in (await subscriber.queue.get()).events
                    ):
                        pass
    finally:
        if subscriber is not None:
            await info.context.events.unsubscribe(subscriber)


@strawberry.type
class RuntimeMutations:
    @strawberry.mutation(
        permission_classes=[IsAgentRuntime],
        directives=[
            REDIS,
            ListSize(
                slicing_arguments=["input.max"],
                sized_fields=["leases"],
                assumed_size=CLAIM_MAX,
                require_one_slicing_argument=False,
            ),
        ],
        description="Up to `max` of the token's agent's tasks, best priority first, each under "
        "a lease. Expired leases are taken back first. Empty when nothing is ready.",
    )
    async def claim_tasks(self, info: Info, input: ClaimTasksInput) -> ClaimTasksPayload | None:
        agent = runtime_agent(info)
        if not 0 <= input.wait_seconds <= MAX_WAIT_SECONDS:
            raise BadUserInput(
                f"'waitSeconds' must be between 0 and {MAX_WAIT_SECONDS}", field="waitSeconds"
            )
        queue = queue_of(info)
        claimed = await queue.claim(agent, input.max, input.lease_seconds)
        if not claimed.leases and input.wait_seconds:
            claimed = await claim_when_ready(
                info, queue, agent, input.max, input.lease_seconds, input.wait_seconds
            )
        return ClaimTasksPayload(
            leases=[
                TaskLease(
                    task=Task.of(lease.task),
                    lease_token=lease.token,
                    expires_at=lease.task.lease_expires_at or lease.task.created_at,
                )
                for lease in claimed.leases
            ]
        )

    @strawberry.mutation(
        permission_classes=[IsAgentRuntime],
        directives=[REDIS],
        description="Extend the lease of a task being worked.",
    )
    async def heartbeat_task(self, info: Info, input: HeartbeatTaskInput) -> TaskPayload | None:
        agent = runtime_agent(info)
        record = await queue_of(info).heartbeat(
            agent, decode_id(input.id, "Task"), input.lease_token, input.lease_seconds
        )
        return TaskPayload(task=Task.of(record))

    @strawberry.mutation(
        permission_classes=[IsAgentRuntime],
        directives=[REDIS],
        description="Report success. Repeating it with the same token returns the task again.",
    )
    async def complete_task(self, info: Info, input: CompleteTaskInput) -> TaskPayload | None:
        agent = runtime_agent(info)
        record = await queue_of(info).complete(
            agent, decode_id(input.id, "Task"), input.lease_token, input.result
        )
        return TaskPayload(task=Task.of(record))

    @strawberry.mutation(
        permission_classes=[IsAgentRuntime], directives=[REDIS], description="Report a failure."
    )
    async def fail_task(self, info: Info, input: FailTaskInput) -> TaskPayload | None:
        agent = runtime_agent(info)
        record = await queue_of(info).fail(
            agent, decode_id(input.id, "Task"), input.lease_token, input.error, input.retryable
        )
        return TaskPayload(task=Task.of(record))
