"""Query.campaignStats: the dashboard's headline numbers, one SQL statement and at most one
Redis command whatever the number of campaigns."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from decimal import Decimal
from typing import Any
from uuid import UUID

import strawberry

from app.cost.directives import REDIS, ListSize
from loaders.postgres.pages import ListFilter
from resolvers.batching import batched, one, settle
from resolvers.campaigns.types import CampaignStatus
from resolvers.engagement.types import Engagement
from resolvers.info import Info
from resolvers.ledger.types import Money, shown

# One count per status, one amount per currency: a tenant's campaigns use a few currencies.
STATUS_COUNTS = [ListSize(assumed_size=len(CampaignStatus))]
CURRENCIES = [ListSize(assumed_size=10)]


@strawberry.type(description="How many campaigns have a status.")
class StatusCount:
    status: CampaignStatus
    count: int


def by_currency(totals: dict[str, Decimal]) -> list[Money]:
    return [Money(amount=shown(totals[c]), currency=c) for c in sorted(totals)]


async def engagement_many(stats: Sequence[CampaignStats], info: Info) -> list[Any]:
    load = info.context.loaders.engagement_total.load
    totals = await settle([load(s.campaign_ids) for s in stats])
    return [t if isinstance(t, Exception) else Engagement.from_counts(t) for t in totals]


@strawberry.type(
    description="Totals over the campaigns a filter matches. Money is summed per currency: "
    "amounts in different currencies are never added together."
)
class CampaignStats:
    total: int
    by_status: list[StatusCount] = strawberry.field(directives=STATUS_COUNTS)
    total_budget: list[Money] = strawberry.field(directives=CURRENCIES)
    total_spent: list[Money] = strawberry.field(directives=CURRENCIES)
    remaining_budget: list[Money] = strawberry.field(directives=CURRENCIES)
    campaign_ids: strawberry.Private[tuple[UUID, ...]]

    @classmethod
    def from_rows(cls, rows: Sequence[Any]) -> CampaignStats:
        counts: dict[str, int] = defaultdict(int)
        budget: dict[str, Decimal] = defaultdict(Decimal)
        spent: dict[str, Decimal] = defaultdict(Decimal)
        ids: list[UUID] = []
        for row in rows:
            counts[row["status"]] += int(row["n"])
            budget[row["currency"]] += row["budget"]
            spent[row["currency"]] += row["spent"]
            ids.extend(row["ids"])
        return cls(
            total=sum(counts.values()),
            by_status=[StatusCount(status=s, count=counts.get(s.value, 0)) for s in CampaignStatus],
            total_budget=by_currency(budget),
            total_spent=by_currency(spent),
            remaining_budget=by_currency({c: budget[c] - spent[c] for c in budget}),
            campaign_ids=tuple(ids),
        )

    @strawberry.field(
        description="Engagement summed over these campaigns inside Redis (one command); null "
        "(with an error) while Redis is unavailable.",
        directives=[REDIS],
        metadata=batched(engagement_many),
    )
    async def engagement(self, info: Info) -> Engagement | None:
        total: Engagement | None = await one(engagement_many, self, info)
        return total


async def campaign_stats(info: Info, flt: ListFilter) -> CampaignStats:
    rows = await info.context.loaders.campaign_stats.load(flt)
    return CampaignStats.from_rows(rows)
