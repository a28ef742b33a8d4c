"""Live campaign events as GraphQL types."""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Sequence
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

import strawberry

from app.events.hub import StreamEvent
from loaders.registry import Loaders
from resolvers.batching import batched, built, one, settle

if TYPE_CHECKING:
    from resolvers.agents.types import Agent
    from resolvers.campaigns.types import Campaign
    from resolvers.tasks.types import Task

CampaignRef = Annotated["Campaign", strawberry.lazy("resolvers.campaigns.types")]
AgentRef = Annotated["Agent", strawberry.lazy("resolvers.agents.types")]
TaskRef = Annotated["Task", strawberry.lazy("resolvers.tasks.types")]


@strawberry.enum
class CampaignEventType(Enum):
    CREATED = "CREATED"
    UPDATED = "UPDATED"
    STATUS_CHANGED = "STATUS_CHANGED"
    AGENT_ASSIGNED = "AGENT_ASSIGNED"
    AGENT_UNASSIGNED = "AGENT_UNASSIGNED"
    MEDIA_READY = "MEDIA_READY"
    ENGAGEMENT = "ENGAGEMENT"
    SPEND = "SPEND"
    TASK_QUEUED = "TASK_QUEUED"
    TASK_STARTED = "TASK_STARTED"
    TASK_SUCCEEDED = "TASK_SUCCEEDED"
    TASK_FAILED = "TASK_FAILED"
    TASK_DEAD = "TASK_DEAD"
    TASK_CANCELLED = "TASK_CANCELLED"


@strawberry.enum(
    description="What happened to a task. TASK_FAILED is an attempt that failed (or a lease "
    "that ran out): the task's status says whether it will be retried (QUEUED) or not (FAILED)."
)
class AgentEventType(Enum):
    TASK_QUEUED = "TASK_QUEUED"
    TASK_STARTED = "TASK_STARTED"
    TASK_SUCCEEDED = "TASK_SUCCEEDED"
    TASK_FAILED = "TASK_FAILED"
    TASK_DEAD = "TASK_DEAD"
    TASK_CANCELLED = "TASK_CANCELLED"


async def campaigns_of_events(events: Sequence[CampaignEvent], info: Any) -> list[Any]:
    """Through each event's own loaders: those of the batch it was read in, shared by every
    subscriber of the tenant (app/events/hub.py)."""
    from resolvers.campaigns.types import Campaign

    rows = await settle([event.loaders.campaign_by_id.load(event.campaign_pk) for event in events])
    return built(rows, Campaign.from_row)


async def tasks_of_events(events: Sequence[CampaignEvent | AgentEvent], info: Any) -> list[Any]:
    """Through each event's batch loaders, like its campaign: one Redis call per batch."""
    from resolvers.tasks.types import Task

    wanted = [(event.loaders, event.task_pk) for event in events]
    loaded = await settle([loaders.task_by_id.load(pk) for loaders, pk in wanted if pk])
    tasks = iter(built(loaded, Task.of))
    return [next(tasks) if pk else None for _loaders, pk in wanted]


@strawberry.type(description="Something that happened to a campaign, in commit order.")
class CampaignEvent:
    id: str = strawberry.field(
        description="A resume cursor: pass it as `after` to receive what came after it."
    )
    type: CampaignEventType
    occurred_at: datetime
    campaign_pk: strawberry.Private[UUID]
    loaders: strawberry.Private[Loaders]
    # Results of executing operations on this event, shared by the subscribers that run the
    # same one (see app/execution.py); one event object per batch makes that possible.
    shared_results: strawberry.Private[dict[Hashable, Any]] = dataclasses.field(
        default_factory=dict
    )
    task_pk: strawberry.Private[UUID | None] = None

    @strawberry.field(
        description="The campaign as it is now, through the same loaders as queries; null if "
        "it has since been deleted.",
        metadata=batched(campaigns_of_events),
    )
    async def campaign(self, info: strawberry.Info) -> CampaignRef | None:
        campaign: CampaignRef | None = await one(campaigns_of_events, self, info)
        return campaign

    @strawberry.field(
        description="For TASK_ events: the task as it is now; null for others, or once the "
        "task is gone.",
        metadata=batched(tasks_of_events),
    )
    async def task(self, info: strawberry.Info) -> TaskRef | None:
        task: TaskRef | None = await one(tasks_of_events, self, info)
        return task


async def agents_of_events(events: Sequence[AgentEvent], info: Any) -> list[Any]:
    from resolvers.agents.types import Agent

    rows = await settle([event.loaders.agent_by_id.load(event.agent_pk) for event in events])
    return built(rows, Agent.from_row)


@strawberry.type(description="Something that happened to one of an agent's tasks, in order.")
class AgentEvent:
    id: str = strawberry.field(
        description="A resume cursor: pass it as `after` to receive what came after it."
    )
    type: AgentEventType
    occurred_at: datetime
    agent_pk: strawberry.Private[UUID]
    task_pk: strawberry.Private[UUID | None]
    loaders: strawberry.Private[Loaders]
    shared_results: strawberry.Private[dict[Hashable, Any]] = dataclasses.field(
        default_factory=dict
    )

    @strawberry.field(metadata=batched(agents_of_events))
    async def agent(self, info: strawberry.Info) -> AgentRef | None:
        agent: AgentRef | None = await one(agents_of_events, self, info)
        return agent

    @strawberry.field(
        description="The task as it is now; null once it is gone.",
        metadata=batched(tasks_of_events),
    )
    async def task(self, info: strawberry.Info) -> TaskRef | None:
        task: TaskRef | None = await one(tasks_of_events, self, info)
        return task


def agent_event(event: StreamEvent, loaders: Loaders) -> AgentEvent:
    assert event.agent_id is not None  # every entry of an agent stream names one
    return AgentEvent(
        id=event.stream_id,
        type=AgentEventType(event.type),
        occurred_at=datetime.fromisoformat(event.occurred_at),
        agent_pk=event.agent_id,
        task_pk=event.task_id,
        loaders=loaders,
    )
