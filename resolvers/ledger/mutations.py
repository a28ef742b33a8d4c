"""recordTransaction: money moved against a campaign's budget, exactly once per key."""

from __future__ import annotations

from decimal import Decimal

import strawberry

from app.auth import Role
from app.commands.ledger import TransactionInput, record_transaction
from app.cost.directives import POSTGRES
from app.errors import Forbidden
from app.ids import decode_id
from app.validation import clean_text
from resolvers.columns import row_of
from resolvers.info import Info
from resolvers.ledger.types import Transaction, TransactionKind
from resolvers.permissions import IsEditor

DESCRIPTION_MAX = 500


@strawberry.input
class RecordTransactionInput:
    campaign_id: strawberry.ID
    kind: TransactionKind
    amount: Decimal = strawberry.field(
        description="In the campaign's currency, with at most its decimal places. Send it as "
        "a string: JSON numbers are read as floats on the way."
    )
    idempotency_key: str = strawberry.field(
        description="Unique per tenant. A retry with the same key and input returns the "
        "original transaction; the same key with another input is IDEMPOTENCY_KEY_REUSED."
    )
    agent_id: strawberry.ID | None = None
    description: str = ""


@strawberry.type
class RecordTransactionPayload:
    transaction: Transaction


@strawberry.type
class LedgerMutations:
    @strawberry.mutation(
        permission_classes=[IsEditor],
        directives=[POSTGRES],
        description="Editors record SPEND and REFUND; ADJUSTMENT needs an admin. Spending past "
        "the budget, or refunding more than was spent, is BUDGET_EXCEEDED.",
    )
    async def record_transaction(
        self, info: Info, input: RecordTransactionInput
    ) -> RecordTransactionPayload | None:
        ctx = info.context
        principal = ctx.require_principal()
        if input.kind is TransactionKind.ADJUSTMENT and not principal.role.allows(Role.ADMIN):
            raise Forbidden("An ADJUSTMENT needs the admin role")
        given = TransactionInput(
            campaign_id=decode_id(input.campaign_id, "Campaign"),
            agent_id=decode_id(input.agent_id, "Agent") if input.agent_id is not None else None,
            kind=input.kind.value,
            amount=input.amount,
            description=clean_text(input.description, "description", DESCRIPTION_MAX),
            idempotency_key=input.idempotency_key,
        )
        row, _created = await record_transaction(ctx.stores.engine, principal, given)
        loaders = ctx.loaders
        loaders.campaign_by_id.clear(given.campaign_id)
        loaders.transaction_by_id.clear(row.id).prime(row.id, row_of(row))
        loaders.transactions_by_campaign.clear_all()
        loaders.transaction_count_by_campaign.clear_all()
        loaders.spent_by_agent.clear_all()
        return RecordTransactionPayload(transaction=Transaction.from_row(row))
