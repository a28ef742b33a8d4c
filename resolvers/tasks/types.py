"""GraphQL types of the task queue: a task, its status, and the lists of an agent or campaign."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

import strawberry
from strawberry.scalars import JSON

from app.auth import Role
from app.cost.directives import CostStore, Store
from app.errors import BadUserInput, Forbidden
from app.ids import encode_id
from app.pagination import PageArgs, check_first, decode_cursor, encode_cursor
from app.queue.records import TaskRecord
from loaders.redis.tasks import TASK_ORDER, TaskIndex
from resolvers.batching import batched, built, one, settle
from resolvers.columns import column
from resolvers.info import Info
from resolvers.relay import Connection, Node, build_connection

if TYPE_CHECKING:
    from resolvers.agents.types import Agent
    from resolvers.campaigns.types import Campaign

AgentRef = Annotated["Agent", strawberry.lazy("resolvers.agents.types")]
CampaignRef = Annotated["Campaign", strawberry.lazy("resolvers.campaigns.types")]


@strawberry.enum(
    description="QUEUED (ready, or waiting for notBefore or a retry's backoff), RUNNING (under "
    "a lease), then SUCCEEDED, FAILED (not retryable), DEAD (out of attempts) or CANCELLED."
)
class TaskStatus(Enum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    DEAD = "DEAD"
    CANCELLED = "CANCELLED"


async def agents_of_tasks(tasks: Sequence[Task], info: Info) -> list[Any]:
    from resolvers.agents.types import Agent

    load = info.context.loaders.agent_by_id.load
    return built(await settle([load(t.record.agent_id) for t in tasks]), Agent.from_row)


async def campaigns_of_tasks(tasks: Sequence[Task], info: Info) -> list[Any]:
    from resolvers.campaigns.types import Campaign

    load = info.context.loaders.campaign_by_id.load
    wanted = [t.record.campaign_id for t in tasks]
    loaded = await settle([load(pk) for pk in wanted if pk is not None])
    campaigns = iter(built(loaded, Campaign.from_row))
    return [next(campaigns) if pk is not None else None for pk in wanted]


def task_id(pk: UUID) -> str:
    return encode_id("Task", pk)


def task_cursor(record: TaskRecord) -> str:
    return encode_cursor(TASK_ORDER, str(record.seq), record.id)


def _json(text: str | None) -> JSON | None:
    return None if text is None else json.loads(text)


@strawberry.type(
    description="Work handed to an agent runtime, kept in Redis.",
    directives=[Store(name=CostStore.REDIS)],
)
class Task(Node):
    __slots__ = ("row",)
    row: strawberry.Private[TaskRecord]
    id: strawberry.ID = column("id", task_id)
    kind: str = column("kind", description="What the runtime is asked to do (its own words).")
    payload: JSON | None = column("payload", _json, description="The task's input, as enqueued.")
    priority: int = column(
        "priority", description="0 to 100; higher is claimed first, then oldest first."
    )
    status: TaskStatus = column("status", TaskStatus)
    attempts: int = column("attempts", description="Claims so far, this one included.")
    max_attempts: int = column("max_attempts")
    last_error: str | None = column(
        "last_error", description="The last failure reported, or why the last lease ended."
    )
    result: JSON | None = column("result", _json, description="What completeTask reported.")
    not_before: datetime | None = column(
        "not_before", description="Not claimed before this (a delay, or a retry's backoff)."
    )
    created_at: datetime = column("created_at")
    started_at: datetime | None = column(
        "started_at", description="When the latest attempt was claimed."
    )
    finished_at: datetime | None = column("finished_at")

    @classmethod
    def of(cls, record: TaskRecord) -> Task:
        return cls(row=record)

    @property
    def record(self) -> TaskRecord:
        return self.row

    @strawberry.field(description="While RUNNING: when the lease runs out unless renewed.")
    def lease_expires_at(self) -> datetime | None:
        return self.row.lease_expires_at if self.row.status == "RUNNING" else None

    @strawberry.field(metadata=batched(agents_of_tasks))
    async def agent(self, info: Info) -> AgentRef | None:
        found: AgentRef | None = await one(agents_of_tasks, self, info)
        return found

    @strawberry.field(metadata=batched(campaigns_of_tasks))
    async def campaign(self, info: Info) -> CampaignRef | None:
        found: CampaignRef | None = await one(campaigns_of_tasks, self, info)
        return found


def task_args(first: int | None, after: str | None) -> PageArgs:
    position = decode_cursor(after, TASK_ORDER, value_is_time=False) if after else None
    if position is not None and not str(position.value).isdigit():
        raise BadUserInput("Invalid cursor", argument="after")
    return PageArgs(first=check_first(first), after=position)


def task_list(
    info: Info, index: TaskIndex, first: int | None, after: str | None
) -> Connection[Task]:
    """Newest first: one Redis call per batch of lists, one more for their totalCounts."""
    loaders = info.context.loaders
    return build_connection(
        loaders.task_page,
        (index, task_args(first, after)),
        Task.of,
        task_cursor,
        loaders.task_count,
        index,
    )


def status_index(owner: str, owner_id: UUID, status: TaskStatus | None) -> TaskIndex:
    return TaskIndex(owner, owner_id, status.value if status is not None else "ALL")


def check_agent_reach(info: Info, agent_id: UUID) -> None:
    """An agent token reaches its own agent only."""
    principal = info.context.require_principal()
    if principal.role is Role.AGENT and principal.agent_id != agent_id:
        raise Forbidden("An agent token reaches its own agent only")
