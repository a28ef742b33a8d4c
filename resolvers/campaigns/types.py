"""GraphQL types of the campaigns domain."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

import strawberry

from app.cost.directives import CostStore, ListSize, Store, connection, size_from, vector_search
from app.ids import encode_id
from app.pagination import encode_cursor
from loaders.postgres.media import MEDIA_ORDER
from resolvers.batching import batched, one, settle
from resolvers.campaigns.metrics import (
    MAX_POINTS,
    MetricBucket,
    MetricPoint,
    metric_points,
    metrics_many,
)
from resolvers.columns import Row, column, row_of
from resolvers.engagement.types import Engagement, EngagementKind
from resolvers.info import Info
from resolvers.listing import edge_args, edge_cursor, time_args
from resolvers.relay import Connection, Node, OrderDirection, build_connection
from resolvers.search.limits import MAX_LIMIT

if TYPE_CHECKING:
    from resolvers.agents.types import Agent
    from resolvers.audit.types import AuditEntry
    from resolvers.ledger.types import Transaction, TransactionFilter
    from resolvers.media.types import MediaAsset
    from resolvers.tasks.types import Task, TaskStatus

AgentRef = Annotated["Agent", strawberry.lazy("resolvers.agents.types")]
MediaRef = Annotated["MediaAsset", strawberry.lazy("resolvers.media.types")]
AuditEntryRef = Annotated["AuditEntry", strawberry.lazy("resolvers.audit.types")]
TransactionRef = Annotated["Transaction", strawberry.lazy("resolvers.ledger.types")]
TaskRef = Annotated["Task", strawberry.lazy("resolvers.tasks.types")]
TaskStatusRef = Annotated["TaskStatus", strawberry.lazy("resolvers.tasks.types")]
TransactionFilterRef = Annotated["TransactionFilter", strawberry.lazy("resolvers.ledger.types")]


@strawberry.enum
class CampaignStatus(Enum):
    DRAFT = "DRAFT"
    ACTIVE = "ACTIVE"
    PAUSED = "PAUSED"
    COMPLETED = "COMPLETED"
    ARCHIVED = "ARCHIVED"


@strawberry.enum
class CampaignOrderField(Enum):
    CREATED_AT = "CREATED_AT"
    UPDATED_AT = "UPDATED_AT"
    NAME = "NAME"


@strawberry.input
class CampaignFilter:
    status: list[CampaignStatus] | None = None
    search: str | None = strawberry.field(
        default=None, description="Case-insensitive substring of the name."
    )


@strawberry.input
class CampaignOrder:
    field: CampaignOrderField = CampaignOrderField.CREATED_AT
    direction: OrderDirection = OrderDirection.ASC


async def engagement_many(campaigns: Sequence[Campaign], info: Info) -> list[Any]:
    load = info.context.loaders.engagement_by_campaign.load
    counts = await settle([load(campaign.pk) for campaign in campaigns])
    return [c if isinstance(c, Exception) else Engagement.from_counts(c) for c in counts]


async def similar_many(
    campaigns: Sequence[Campaign], info: Info, limit: int | None = 5
) -> list[Any]:
    from resolvers.search.queries import check_limit, hydrate_many

    loaders = info.context.loaders
    n = check_limit(limit, default=5)
    hits = await settle([loaders.similar_by_campaign.load((c.pk, n)) for c in campaigns])
    return [
        found
        if isinstance(found, Exception)
        else [
            SimilarCampaign(score=score, campaign=node)
            for score, node in found
            if isinstance(node, Campaign)
        ]
        for found in await hydrate_many(loaders, hits)
    ]


def media_cursor(row: Any) -> str:
    return encode_cursor(MEDIA_ORDER, row["created_at"], row["id"])


def campaign_id(pk: UUID) -> str:
    return encode_id("Campaign", pk)


@strawberry.type(
    description="A marketing campaign run by a tenant's agents.",
    directives=[Store(name=CostStore.POSTGRES)],
)
class Campaign(Node):
    __slots__ = ("row",)
    row: strawberry.Private[Row]
    id: strawberry.ID = column("id", campaign_id)
    name: str = column("name")
    goal: str = column("goal")
    status: CampaignStatus = column("status", CampaignStatus)
    budget: Decimal = column("budget")
    starts_at: datetime | None = column("starts_at")
    ends_at: datetime | None = column("ends_at")
    created_at: datetime = column("created_at")
    updated_at: datetime = column("updated_at")
    currency: str = column(
        "currency", description="ISO 4217 code of the budget and of every transaction."
    )
    spent: Decimal = column(
        "spent",
        description="SPEND and ADJUSTMENT transactions minus REFUNDs; never above the budget.",
    )

    @classmethod
    def from_row(cls, row: Any) -> Campaign:
        return cls(row=row_of(row))

    @property
    def pk(self) -> UUID:
        pk: UUID = self.row["id"]
        return pk

    @strawberry.field(
        description="Live counters from Redis; null (with an error) while Redis is unavailable.",
        directives=[Store(name=CostStore.REDIS)],
        metadata=batched(engagement_many),
    )
    async def engagement(self, info: Info) -> Engagement | None:
        engagement: Engagement | None = await one(engagement_many, self, info)
        return engagement

    @strawberry.field(
        description="Campaigns of this tenant closest in meaning to this one, best first.",
        directives=vector_search(call=10, limit=MAX_LIMIT),
        metadata=batched(similar_many),
    )
    async def similar(self, info: Info, limit: int | None = 5) -> list[SimilarCampaign]:
        similar: list[SimilarCampaign] = await one(similar_many, self, info, limit=limit)
        return similar

    @strawberry.field(
        description="Engagement and spend over [from, to) in buckets of the time zone (an "
        "IANA name, default UTC), empty buckets as zeros; at most 1,000 points. `kinds` "
        "chooses what each point's `engagement` adds up (default: every kind).",
        directives=[ListSize(assumed_size=MAX_POINTS), Store(name=CostStore.POSTGRES, call=2)],
        metadata={**batched(metrics_many), **size_from(metric_points)},
    )
    async def metrics(
        self,
        info: Info,
        from_: Annotated[datetime, strawberry.argument(name="from")],
        to: datetime,
        bucket: MetricBucket,
        time_zone: str | None = "UTC",
        kinds: list[EngagementKind] | None = None,
    ) -> list[MetricPoint]:
        found: list[MetricPoint] = await one(
            metrics_many,
            self,
            info,
            from_=from_,
            to=to,
            bucket=bucket,
            time_zone=time_zone,
            kinds=kinds,
        )
        return found

    @strawberry.field(description="The budget minus what was spent.")
    def remaining_budget(self) -> Decimal:
        remaining: Decimal = self.row["budget"] - self.row["spent"]
        return remaining

    @strawberry.field(description="The campaign's ledger, newest first.", directives=connection())
    def transactions(
        self,
        info: Info,
        first: int | None = 20,
        after: str | None = None,
        filter: TransactionFilterRef | None = None,
    ) -> Connection[TransactionRef]:
        from loaders.postgres.ledger import TRANSACTION_ORDER
        from resolvers.ledger.types import Transaction, transaction_cursor, transaction_filter

        loaders = info.context.loaders
        where = transaction_filter(filter)
        key = (self.pk, where, time_args(first, after, TRANSACTION_ORDER))
        return build_connection(
            loaders.transactions_by_campaign,
            key,
            Transaction.from_row,
            transaction_cursor,
            loaders.transaction_count_by_campaign,
            (self.pk, where),
        )

    @strawberry.field(
        description="Tasks queued for this campaign, newest first, of one status or all.",
        directives=connection(store=CostStore.REDIS),
    )
    def tasks(
        self,
        info: Info,
        status: TaskStatusRef | None = None,
        first: int | None = 20,
        after: str | None = None,
    ) -> Connection[TaskRef]:
        from resolvers.tasks.types import status_index, task_list

        return task_list(info, status_index("campaign", self.pk, status), first, after)

    @strawberry.field(
        description="Audited changes of this campaign and of what belongs to it (membership, "
        "media, transactions), newest first.",
        directives=connection(),
    )
    def history(
        self, info: Info, first: int | None = 20, after: str | None = None
    ) -> Connection[AuditEntryRef]:
        from resolvers.audit.queries import history

        return history(info, "campaign", self.pk, first, after)

    @strawberry.field(
        description="Images and videos of this campaign, oldest first.", directives=connection()
    )
    def media(
        self, info: Info, first: int | None = 20, after: str | None = None
    ) -> Connection[MediaRef]:
        from resolvers.media.types import MediaAsset

        loaders = info.context.loaders
        key = (self.pk, time_args(first, after, MEDIA_ORDER))
        return build_connection(
            loaders.media_by_campaign,
            key,
            MediaAsset.from_row,
            media_cursor,
            loaders.media_count_by_campaign,
            self.pk,
        )

    @strawberry.field(
        description="Agents assigned to this campaign, in assignment order.",
        directives=connection(),
    )
    def agents(
        self, info: Info, first: int | None = 20, after: str | None = None
    ) -> Connection[AgentRef]:
        from resolvers.agents.types import Agent

        loaders = info.context.loaders
        key = (self.pk, edge_args(first, after))
        return build_connection(
            loaders.agents_by_campaign,
            key,
            Agent.from_row,
            edge_cursor,
            loaders.agent_count_by_campaign,
            self.pk,
        )


@strawberry.type(description="A campaign like another one, and how alike they are.")
class SimilarCampaign:
    score: float
    campaign: Campaign
