"""Query.campaign and Query.campaigns."""

from __future__ import annotations

from functools import partial

import strawberry

from app.cost.directives import POSTGRES, Cost, connection
from app.ids import decode_id
from app.validation import clean_search
from loaders.postgres.pages import ListFilter
from resolvers.campaigns.stats import CampaignStats, campaign_stats
from resolvers.campaigns.types import Campaign, CampaignFilter, CampaignOrder
from resolvers.info import Info
from resolvers.listing import chosen, list_cursor, list_query
from resolvers.relay import Connection, build_connection


@strawberry.type
class CampaignQueries:
    @strawberry.field(description="One campaign of the caller's tenant, or null.")
    async def campaign(self, info: Info, id: strawberry.ID) -> Campaign | None:
        row = await info.context.loaders.campaign_by_id.load(decode_id(id, "Campaign"))
        return Campaign.from_row(row) if row is not None else None

    @strawberry.field(
        description="The caller's campaigns; `first` defaults to 20, at most 100.",
        directives=connection(),
    )
    async def campaigns(
        self,
        info: Info,
        first: int | None = 20,
        after: str | None = None,
        filter: CampaignFilter | None = None,
        order_by: CampaignOrder | None = None,
    ) -> Connection[Campaign]:
        flt, order = filter or CampaignFilter(), order_by or CampaignOrder()
        # flt.status as given: null is no filter, [] matches no campaign (resolvers/listing.py).
        query = list_query(first, after, flt.status, flt.search, order.field, order.direction)
        loaders = info.context.loaders
        return build_connection(
            loaders.campaign_page,
            query,
            Campaign.from_row,
            partial(list_cursor, query),
            loaders.campaign_count,
            query.filter,
        )

    @strawberry.field(
        description="Counts by status, money per currency and engagement over the campaigns "
        "the filter matches (all of the tenant's without one).",
        directives=[Cost(weight=5), POSTGRES],
    )
    async def campaign_stats(
        self, info: Info, filter: CampaignFilter | None = None
    ) -> CampaignStats:
        flt = filter or CampaignFilter()
        listing = ListFilter(statuses=chosen(flt.status), search=clean_search(flt.search))
        if listing.matches_nothing:  # status: [] matches no campaign, as campaigns() does
            return CampaignStats.from_rows([])
        return await campaign_stats(info, listing)
