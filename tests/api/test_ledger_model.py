"""The ledger against a model of it: any sequence of spends, refunds, adjustments, retries
with reused keys, budget changes and status changes is answered as the model says, and
leaves PostgreSQL agreeing with it.

The rules modelled (app/commands/ledger.py, app/commands/campaigns.py, ADR 0021): an amount
is checked first (positive for SPEND and REFUND, non-zero for ADJUSTMENT); then its key: a
key already committed answers with its original transaction when the input repeats it and
with IDEMPOTENCY_KEY_REUSED when it does not, and moves nothing either way; then the money:
an archived campaign takes nothing (CONFLICT), and ``spent`` moves only while it stays
within ``0 <= spent <= budget`` (BUDGET_EXCEEDED). A refused attempt commits nothing, its
key included. A budget may not drop below ``spent``; statuses follow their transitions.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.auth import Role
from app.commands.campaigns import TRANSITIONS
from app.ids import decode_id
from app.stores.postgres.tables import audit_log, campaign, ledger_transaction
from tests.api.test_ledger import CREATE, RECORD
from tests.support import TenantClient, error_codes

UPDATE_BUDGET = """mutation($id: ID!, $budget: Decimal!) {
  updateCampaign(input: {id: $id, budget: $budget}) { campaign { budget spent } } }"""
SET_STATUS = """mutation($id: ID!, $status: CampaignStatus!) {
  setCampaignStatus(input: {id: $id, status: $status}) { campaign { status } } }"""

CENTS = st.integers(min_value=-6_000, max_value=6_000).map(lambda c: Decimal(c).scaleb(-2))
KEYS = st.sampled_from([f"key-{n}" for n in range(6)])  # few, so that they come back
OPERATIONS = st.one_of(
    st.tuples(st.sampled_from(["SPEND", "REFUND", "ADJUSTMENT"]), CENTS, KEYS),
    st.tuples(st.just("BUDGET"), st.integers(0, 20_000).map(lambda c: Decimal(c).scaleb(-2))),
    st.tuples(st.just("STATUS"), st.sampled_from(sorted(TRANSITIONS))),
)


@dataclass
class Model:
    budget: Decimal
    spent: Decimal = Decimal("0.00")
    status: str = "DRAFT"
    keys: dict[str, tuple[str, Decimal]] = field(default_factory=dict)  # key -> (kind, amount)

    def record(self, kind: str, amount: Decimal, key: str) -> str | None:
        """The error code the API must answer with, or None; applies a success."""
        if (kind == "ADJUSTMENT" and amount == 0) or (kind != "ADJUSTMENT" and amount <= 0):
            return "BAD_USER_INPUT"
        if key in self.keys:
            return None if self.keys[key] == (kind, amount) else "IDEMPOTENCY_KEY_REUSED"
        if self.status == "ARCHIVED":
            return "CONFLICT"
        moved = self.spent + (-amount if kind == "REFUND" else amount)
        if not Decimal(0) <= moved <= self.budget:
            return "BUDGET_EXCEEDED"
        self.spent = moved
        self.keys[key] = (kind, amount)
        return None

    def change_budget(self, budget: Decimal) -> str | None:
        if self.status == "ARCHIVED":
            return "CONFLICT"
        if budget < self.spent:
            return "BUDGET_EXCEEDED"
        self.budget = budget
        return None

    def change_status(self, status: str) -> str | None:
        if status == self.status:  # already so: nothing to do, and no error
            return None
        if status not in TRANSITIONS[self.status]:
            return "CONFLICT"
        self.status = status
        return None


async def _stored(engine: AsyncEngine, tenant_id: uuid.UUID, pk: uuid.UUID) -> dict[str, Any]:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(campaign.c.spent, campaign.c.budget, campaign.c.status).where(
                    campaign.c.tenant_id == tenant_id, campaign.c.id == pk
                )
            )
        ).one()
        ledger = (
            await conn.execute(
                select(ledger_transaction.c.kind, ledger_transaction.c.amount).where(
                    ledger_transaction.c.tenant_id == tenant_id,
                    ledger_transaction.c.campaign_id == pk,
                )
            )
        ).all()
        audited = await conn.scalar(
            select(func.count())
            .select_from(audit_log)
            .where(
                audit_log.c.tenant_id == tenant_id,
                audit_log.c.entity_type == "ledger_transaction",
                audit_log.c.entity_id.in_(
                    select(ledger_transaction.c.id).where(
                        ledger_transaction.c.tenant_id == tenant_id,
                        ledger_transaction.c.campaign_id == pk,
                    )
                ),
            )
        )
    net = sum((-amount if kind == "REFUND" else amount for kind, amount in ledger), Decimal(0))
    return {
        "spent": row.spent,
        "budget": row.budget,
        "status": row.status,
        "rows": len(ledger),
        "net": net,
        "audited": audited,
    }


@settings(
    max_examples=int(os.environ.get("CHIMERA_FUZZ_EXAMPLES", "0")) or 25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    budget=st.integers(0, 10_000).map(lambda c: Decimal(c).scaleb(-2)),
    operations=st.lists(OPERATIONS, min_size=1, max_size=25),
)
async def test_any_sequence_of_ledger_and_campaign_changes_is_answered_and_stored_as_modelled(
    tenant: TenantClient, engine: AsyncEngine, budget: Decimal, operations: list[Any]
) -> None:
    created = await tenant.data(CREATE, {"name": "Modelled", "budget": str(budget)})
    campaign_id = created["createCampaign"]["campaign"]["id"]
    pk = decode_id(campaign_id, "Campaign")
    # Keys are per tenant and the tenant outlives the example: each example keys its own.
    prefix = uuid.uuid4().hex[:8]
    model = Model(budget=budget)
    originals: dict[str, str] = {}  # key -> the id of the transaction it made

    for step, operation in enumerate(operations):
        kind = operation[0]
        if kind == "BUDGET":
            expected = model.change_budget(operation[1])
            body = await tenant.gql(
                UPDATE_BUDGET, {"id": campaign_id, "budget": str(operation[1])}, role=Role.ADMIN
            )
        elif kind == "STATUS":
            expected = model.change_status(operation[1])
            body = await tenant.gql(
                SET_STATUS, {"id": campaign_id, "status": operation[1]}, role=Role.ADMIN
            )
        else:
            amount, key = operation[1], operation[2]
            expected = model.record(kind, amount, key)
            variables = {"campaign": campaign_id, "kind": kind, "amount": str(amount)}
            # An admin: an ADJUSTMENT is theirs alone (who may do what is tested elsewhere).
            body = await tenant.gql(RECORD, {**variables, "key": prefix + key}, role=Role.ADMIN)
            if expected is None:
                made = body["data"]["recordTransaction"]["transaction"]
                # A retry answers with the transaction its key made the first time.
                assert originals.setdefault(key, made["id"]) == made["id"], (step, operations)
                assert Decimal(made["campaign"]["spent"]) == model.spent, (step, operations)
        codes = error_codes(body)
        assert codes == ([expected] if expected else []), (step, operation, operations, body)

    stored = await _stored(engine, tenant.id, pk)
    assert stored["spent"] == model.spent == stored["net"], (stored, model, operations)
    assert stored["budget"] == model.budget, (stored, model, operations)
    assert stored["status"] == model.status, (stored, model, operations)
    assert stored["rows"] == len(model.keys) == stored["audited"], (stored, model, operations)
