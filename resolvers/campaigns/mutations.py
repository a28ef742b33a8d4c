"""Campaign mutations: create, update, status changes and agent membership."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import strawberry

from app.commands import campaigns as commands
from app.cost.directives import POSTGRES
from app.ids import decode_id
from app.money import DEFAULT_CURRENCY, clean_amount, clean_currency
from app.validation import check_dates, clean_budget, clean_name, clean_text
from resolvers.campaigns.types import Campaign, CampaignStatus
from resolvers.columns import row_of
from resolvers.info import Info
from resolvers.permissions import IsEditor


@strawberry.input
class CreateCampaignInput:
    name: str
    goal: str = ""
    budget: Decimal = Decimal("0")
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    currency: str = strawberry.field(
        default=DEFAULT_CURRENCY,
        description="ISO 4217 code of the budget and of every transaction.",
    )


@strawberry.input
class UpdateCampaignInput:
    id: strawberry.ID
    name: str | None = None
    goal: str | None = None
    budget: Decimal | None = None
    starts_at: datetime | None = strawberry.UNSET
    ends_at: datetime | None = strawberry.UNSET
    currency: str | None = strawberry.field(
        default=None, description="Only while the campaign has no transactions."
    )


@strawberry.input
class SetCampaignStatusInput:
    id: strawberry.ID
    status: CampaignStatus


@strawberry.input
class AssignAgentsInput:
    campaign_id: strawberry.ID
    agent_ids: list[strawberry.ID]


@strawberry.input
class UnassignAgentInput:
    campaign_id: strawberry.ID
    agent_id: strawberry.ID


@strawberry.type
class CreateCampaignPayload:
    campaign: Campaign


@strawberry.type
class UpdateCampaignPayload:
    campaign: Campaign


@strawberry.type
class SetCampaignStatusPayload:
    campaign: Campaign


@strawberry.type
class AssignAgentsPayload:
    campaign: Campaign


@strawberry.type
class UnassignAgentPayload:
    campaign: Campaign


def _fresh(info: Info, row: Any) -> Campaign:
    """Make the rest of this request see the campaign, and its membership, as written."""
    loaders = info.context.loaders
    loaders.campaign_by_id.clear(row.id).prime(row.id, row_of(row))
    loaders.agents_by_campaign.clear_all()
    loaders.campaigns_by_agent.clear_all()
    loaders.agent_count_by_campaign.clear(row.id)
    loaders.campaign_count_by_agent.clear_all()
    return Campaign.from_row(row)


def _given(value: Any) -> bool:
    return value is not strawberry.UNSET


@strawberry.type
class CampaignMutations:
    @strawberry.mutation(permission_classes=[IsEditor], directives=[POSTGRES])
    async def create_campaign(
        self, info: Info, input: CreateCampaignInput
    ) -> CreateCampaignPayload | None:
        check_dates(input.starts_at, input.ends_at)
        ctx = info.context
        currency = clean_currency(input.currency)
        row = await commands.create_campaign(
            ctx.stores.engine,
            ctx.require_principal(),
            name=clean_name(input.name, "name"),
            goal=clean_text(input.goal, "goal"),
            budget=clean_amount(clean_budget(input.budget), currency, "budget"),
            starts_at=input.starts_at,
            ends_at=input.ends_at,
            currency=currency,
        )
        return CreateCampaignPayload(campaign=_fresh(info, row))

    @strawberry.mutation(permission_classes=[IsEditor], directives=[POSTGRES])
    async def update_campaign(
        self, info: Info, input: UpdateCampaignInput
    ) -> UpdateCampaignPayload | None:
        starts = input.starts_at if _given(input.starts_at) else None
        ends = input.ends_at if _given(input.ends_at) else None
        check_dates(starts, ends)
        changes = commands.CampaignChanges(
            name=clean_name(input.name, "name") if input.name is not None else None,
            goal=clean_text(input.goal, "goal") if input.goal is not None else None,
            budget=clean_budget(input.budget) if input.budget is not None else None,
            starts_at=input.starts_at if _given(input.starts_at) else commands.KEEP,
            ends_at=input.ends_at if _given(input.ends_at) else commands.KEEP,
            currency=clean_currency(input.currency) if input.currency is not None else None,
        )
        ctx = info.context
        row = await commands.update_campaign(
            ctx.stores.engine, ctx.require_principal(), decode_id(input.id, "Campaign"), changes
        )
        return UpdateCampaignPayload(campaign=_fresh(info, row))

    @strawberry.mutation(permission_classes=[IsEditor], directives=[POSTGRES])
    async def set_campaign_status(
        self, info: Info, input: SetCampaignStatusInput
    ) -> SetCampaignStatusPayload | None:
        ctx = info.context
        row = await commands.set_campaign_status(
            ctx.stores.engine,
            ctx.require_principal(),
            decode_id(input.id, "Campaign"),
            input.status.value,
        )
        return SetCampaignStatusPayload(campaign=_fresh(info, row))

    @strawberry.mutation(permission_classes=[IsEditor], directives=[POSTGRES])
    async def assign_agents(
        self, info: Info, input: AssignAgentsInput
    ) -> AssignAgentsPayload | None:
        ctx = info.context
        row = await commands.assign_agents(
            ctx.stores.engine,
            ctx.require_principal(),
            decode_id(input.campaign_id, "Campaign"),
            [decode_id(a, "Agent") for a in input.agent_ids],
        )
        return AssignAgentsPayload(campaign=_fresh(info, row))

    @strawberry.mutation(permission_classes=[IsEditor], directives=[POSTGRES])
    async def unassign_agent(
        self, info: Info, input: UnassignAgentInput
    ) -> UnassignAgentPayload | None:
        ctx = info.context
        row = await commands.unassign_agent(
            ctx.stores.engine,
            ctx.require_principal(),
            decode_id(input.campaign_id, "Campaign"),
            decode_id(input.agent_id, "Agent"),
        )
        return UnassignAgentPayload(campaign=_fresh(info, row))
