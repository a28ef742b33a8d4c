"""Recording money: a ledger transaction and the campaign total it moves, exactly once.

Two invariants, both kept by PostgreSQL rather than by a read-then-write in Python:

- **No overspend.** ``campaign.spent`` is moved by one conditional ``UPDATE`` in the same
  transaction as the ledger row: it applies only while ``0 <= spent + delta <= budget``, and
  the row lock it takes makes concurrent spends of one campaign queue, each seeing the total
  the previous one committed. The ``spent_within_budget`` check constraint backs it up.
- **Exactly once.** The ledger row is inserted first, under the unique
  ``(tenant_id, idempotency_key)``: a concurrent retry of the same key waits for the first
  attempt's transaction, then finds its row (or, if that attempt failed, takes its place). A
  key seen before answers with its original transaction when the input matches the
  fingerprint stored with it, and with IDEMPOTENCY_KEY_REUSED when it does not.

The audit row and the SPEND campaign event commit with the transaction (ADR 0021).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Row, and_, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.auth import Principal
from app.commands.changes import record_change
from app.commands.owned import owned_row
from app.errors import BadUserInput, BudgetExceeded, Conflict, IdempotencyKeyReused
from app.ids import encode_id
from app.money import clean_amount
from app.stores.postgres.tables import agent, campaign, ledger_transaction
from app.validation import clean_idempotency_key

KINDS = ("SPEND", "REFUND", "ADJUSTMENT")


@dataclass(frozen=True)
class TransactionInput:
    campaign_id: uuid.UUID
    agent_id: uuid.UUID | None
    kind: str
    amount: Decimal
    description: str
    idempotency_key: str

    def fingerprint(self, amount: Decimal) -> str:
        """What a retry must repeat: every input but the key, the amount as stored."""
        canonical = json.dumps(
            [
                str(self.campaign_id),
                str(self.agent_id) if self.agent_id else None,
                self.kind,
                str(amount),
                self.description,
            ]
        )
        return hashlib.sha256(canonical.encode()).hexdigest()


def delta_of(kind: str, amount: Decimal) -> Decimal:
    """How a transaction moves ``spent``: refunds give back, the others take."""
    return -amount if kind == "REFUND" else amount


async def record_transaction(
    engine: AsyncEngine, principal: Principal, given: TransactionInput
) -> tuple[Row[Any], bool]:
    """The transaction, and whether this call created it (False: a retry of its key)."""
    if given.kind not in KINDS:
        raise BadUserInput(f"'kind' must be one of {', '.join(KINDS)}", field="kind")
    key = clean_idempotency_key(given.idempotency_key)
    async with engine.begin() as conn:
        target = await owned_row(
            conn, campaign, principal, given.campaign_id, what="Campaign", argument="campaignId"
        )
        amount = clean_amount(given.amount, target.currency)
        if given.kind == "ADJUSTMENT" and amount == 0:
            raise BadUserInput("'amount' of an ADJUSTMENT must not be zero", field="amount")
        if given.kind != "ADJUSTMENT" and amount <= 0:
            raise BadUserInput(f"'amount' of a {given.kind} must be positive", field="amount")
        if given.agent_id is not None:  # before the insert, whose foreign key would refuse it
            await owned_row(
                conn, agent, principal, given.agent_id, what="Agent", argument="agentId"
            )
        fingerprint = given.fingerprint(amount)
        row = await _insert_once(conn, principal, given, key, amount, target.currency, fingerprint)
        if row is None:
            return await _original(conn, principal, key, fingerprint), False
        await _move_spent(conn, principal, target, delta_of(given.kind, amount))
        await record_change(
            conn,
            principal,
            action=f"ledger.{given.kind.lower()}",
            entity_type="ledger_transaction",
            entity_id=row.id,
            before=None,
            after=row,
            event_type="SPEND",
            aggregate_type="campaign",
            aggregate_id=given.campaign_id,
            payload={
                "campaignId": given.campaign_id,
                "transactionId": row.id,
                "kind": given.kind,
                "amount": amount,
                "currency": target.currency,
            },
        )
    return row, True


async def _insert_once(
    conn: AsyncConnection,
    principal: Principal,
    given: TransactionInput,
    key: str,
    amount: Decimal,
    currency: str,
    fingerprint: str,
) -> Row[Any] | None:
    """The new row, or None when the tenant has used the key before (committed)."""
    inserted = await conn.execute(
        pg_insert(ledger_transaction)
        .values(
            id=uuid.uuid4(),
            tenant_id=principal.tenant_id,
            campaign_id=given.campaign_id,
            agent_id=given.agent_id,
            kind=given.kind,
            amount=amount,
            currency=currency,
            description=given.description,
            idempotency_key=key,
            actor=principal.subject,
            fingerprint=fingerprint,
            created_at=func.clock_timestamp(),
        )
        .on_conflict_do_nothing(index_elements=["tenant_id", "idempotency_key"])
        .returning(*ledger_transaction.c)
    )
    return inserted.first()


async def _original(
    conn: AsyncConnection, principal: Principal, key: str, fingerprint: str
) -> Row[Any]:
    original = (
        await conn.execute(
            select(ledger_transaction).where(
                ledger_transaction.c.tenant_id == principal.tenant_id,
                ledger_transaction.c.idempotency_key == key,
            )
        )
    ).one()
    if original.fingerprint != fingerprint:
        raise IdempotencyKeyReused(
            "This idempotency key was used for a different transaction",
            field="idempotencyKey",
            # The global id, as Transaction.id shows it: what the client can look up.
            transactionId=encode_id("Transaction", original.id),
        )
    return original


async def _move_spent(
    conn: AsyncConnection, principal: Principal, target: Row[Any], delta: Decimal
) -> None:
    moved = (
        await conn.execute(
            update(campaign)
            .where(
                campaign.c.tenant_id == principal.tenant_id,
                campaign.c.id == target.id,
                campaign.c.status != "ARCHIVED",
                and_(campaign.c.spent + delta >= 0, campaign.c.spent + delta <= campaign.c.budget),
            )
            .values(spent=campaign.c.spent + delta, updated_at=func.now())
            .returning(campaign.c.spent)
        )
    ).first()
    if moved is not None:
        return
    now = (
        await conn.execute(
            select(campaign.c.status, campaign.c.spent, campaign.c.budget).where(
                campaign.c.tenant_id == principal.tenant_id, campaign.c.id == target.id
            )
        )
    ).one()
    if now.status == "ARCHIVED":
        raise Conflict("An archived campaign takes no transactions")
    if delta < 0:
        raise BudgetExceeded(
            "A refund or a negative adjustment cannot take back more than was spent",
            spent=str(now.spent),
            budget=str(now.budget),
        )
    raise BudgetExceeded(
        "This would take the campaign's spending past its budget",
        spent=str(now.spent),
        budget=str(now.budget),
        remaining=str(now.budget - now.spent),
    )
