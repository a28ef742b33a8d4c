"""GraphQL types of the ledger: transactions, their kinds, and amounts with a currency."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

import strawberry

from app.cost.directives import CostStore, Store
from app.ids import encode_id
from app.money import STORED_DECIMALS
from app.pagination import encode_cursor
from app.validation import check_window
from loaders.postgres.ledger import TRANSACTION_ORDER
from loaders.postgres.ledger import TransactionFilter as Where
from resolvers.batching import batched, built, one, settle
from resolvers.columns import Row, column, row_of
from resolvers.info import Info
from resolvers.relay import Node

if TYPE_CHECKING:
    from resolvers.agents.types import Agent
    from resolvers.campaigns.types import Campaign

AgentRef = Annotated["Agent", strawberry.lazy("resolvers.agents.types")]
CampaignRef = Annotated["Campaign", strawberry.lazy("resolvers.campaigns.types")]

CENT = Decimal(1).scaleb(-STORED_DECIMALS)


def shown(amount: Decimal) -> Decimal:
    """Money as clients see it: two decimals, like a campaign's budget (the ledger column
    keeps four, so "12.5000" would otherwise leak its storage)."""
    return amount.quantize(CENT)


@strawberry.enum(
    description="SPEND and ADJUSTMENT add to what a campaign spent; REFUND gives back."
)
class TransactionKind(Enum):
    SPEND = "SPEND"
    REFUND = "REFUND"
    ADJUSTMENT = "ADJUSTMENT"


@strawberry.input
class TransactionFilter:
    kinds: list[TransactionKind] | None = None
    from_: datetime | None = strawberry.field(
        default=None, name="from", description="Created at or after this moment."
    )
    to: datetime | None = strawberry.field(default=None, description="Created before this moment.")


@strawberry.type(description="An amount of money in a currency (ISO 4217).")
class Money:
    amount: Decimal
    currency: str


async def campaigns_of_transactions(items: Sequence[Transaction], info: Info) -> list[Any]:
    from resolvers.campaigns.types import Campaign

    load = info.context.loaders.campaign_by_id.load
    return built(await settle([load(t.row["campaign_id"]) for t in items]), Campaign.from_row)


async def agents_of_transactions(items: Sequence[Transaction], info: Info) -> list[Any]:
    from resolvers.agents.types import Agent

    loaders = info.context.loaders
    wanted = [t.row["agent_id"] for t in items]
    loaded = await settle([loaders.agent_by_id.load(pk) for pk in wanted if pk is not None])
    agents = iter(built(loaded, Agent.from_row))
    return [next(agents) if pk is not None else None for pk in wanted]


async def spent_by_agents(pks: Sequence[UUID], info: Info) -> list[Any]:
    """What each agent's transactions moved, one Money per currency: Agent.spent and
    Agent.stats.spent alike."""
    load = info.context.loaders.spent_by_agent.load
    return [
        totals
        if isinstance(totals, Exception)
        else [Money(amount=shown(amount), currency=currency) for currency, amount in totals]
        for totals in await settle([load(pk) for pk in pks])
    ]


def transaction_id(pk: UUID) -> str:
    return encode_id("Transaction", pk)


def transaction_cursor(row: Any) -> str:
    return encode_cursor(TRANSACTION_ORDER, row["created_at"], row["id"])


@strawberry.type(
    description="One entry of a campaign's ledger. Transactions are never changed.",
    directives=[Store(name=CostStore.POSTGRES)],
)
class Transaction(Node):
    __slots__ = ("row",)
    row: strawberry.Private[Row]
    id: strawberry.ID = column("id", transaction_id)
    kind: TransactionKind = column("kind", TransactionKind)
    amount: Decimal = column(
        "amount", shown, description="Positive, except for a negative ADJUSTMENT."
    )
    currency: str = column("currency", description="The campaign's currency (ISO 4217).")
    description: str = column("description")
    idempotency_key: str = column("idempotency_key")
    actor: str = column("actor", description="Who recorded it (the token's subject).")
    created_at: datetime = column("created_at")

    @classmethod
    def from_row(cls, row: Any) -> Transaction:
        return cls(row=row_of(row))

    @strawberry.field(metadata=batched(campaigns_of_transactions))
    async def campaign(self, info: Info) -> CampaignRef:
        found: CampaignRef = await one(campaigns_of_transactions, self, info)
        return found

    @strawberry.field(
        description="The agent it was spent by, if any.", metadata=batched(agents_of_transactions)
    )
    async def agent(self, info: Info) -> AgentRef | None:
        found: AgentRef | None = await one(agents_of_transactions, self, info)
        return found


def transaction_filter(given: TransactionFilter | None) -> Where:
    """The loader's filter from the argument: kinds in one order (so equal filters share a
    statement), and a window whose ends have a zone and are in order."""
    if given is None:
        return Where()
    check_window(given.from_, given.to, "filter")
    # [] matches no transaction, as an empty status list matches no campaign.
    kinds = None if given.kinds is None else tuple(sorted({k.value for k in given.kinds}))
    return Where(kinds=kinds, since=given.from_, until=given.to)
