"""The ledger: a currency and a running total per campaign, and transactions that keep it.

`campaign.spent` is the sum of the campaign's ledger transactions (SPEND and ADJUSTMENT add,
REFUND subtracts), written in the same transaction as each ledger row, so that the budget
invariant is a row constraint PostgreSQL enforces under any concurrency
(`0 <= spent <= budget`), and reading it costs nothing beyond the campaign row. Every
ledger row names its actor, may name an agent of the same tenant, and keeps a fingerprint of
its input so that a retried idempotency key can be told from a reused one.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 11:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "campaign",
        sa.Column("currency", sa.String(length=3), server_default="USD", nullable=False),
    )
    op.add_column(
        "campaign",
        sa.Column(
            "spent", sa.Numeric(precision=14, scale=2), server_default=sa.text("0"), nullable=False
        ),
    )
    op.create_check_constraint(
        op.f("ck_campaign_currency_format"), "campaign", "currency ~ '^[A-Z]{3}$'"
    )
    op.create_check_constraint(
        op.f("ck_campaign_spent_within_budget"), "campaign", "spent >= 0 AND spent <= budget"
    )

    op.add_column("ledger_transaction", sa.Column("agent_id", sa.UUID(), nullable=True))
    op.add_column(
        "ledger_transaction",
        sa.Column("actor", sa.String(length=200), server_default="", nullable=False),
    )
    op.add_column(
        "ledger_transaction",
        sa.Column("fingerprint", sa.String(length=64), server_default="", nullable=False),
    )
    op.alter_column("ledger_transaction", "campaign_id", nullable=False)
    op.create_foreign_key(
        op.f("fk_ledger_transaction_tenant_id_agent_id_agent"),
        "ledger_transaction",
        "agent",
        ["tenant_id", "agent_id"],
        ["tenant_id", "id"],
        ondelete="RESTRICT",
    )
    op.create_check_constraint(
        op.f("ck_ledger_transaction_kind"),
        "ledger_transaction",
        "kind IN ('SPEND', 'REFUND', 'ADJUSTMENT')",
    )
    op.create_check_constraint(
        op.f("ck_ledger_transaction_amount_sign"),
        "ledger_transaction",
        "amount <> 0 AND (kind = 'ADJUSTMENT' OR amount > 0)",
    )
    op.create_index(
        op.f("ix_ledger_transaction_tenant_id_agent_id"),
        "ledger_transaction",
        ["tenant_id", "agent_id"],
    )
    op.create_index(
        op.f("ix_ledger_transaction_tenant_id_campaign_id_created_at_id"),
        "ledger_transaction",
        ["tenant_id", "campaign_id", "created_at", "id"],
    )
    op.drop_index(
        op.f("ix_ledger_transaction_tenant_id_campaign_id_created_at"),
        table_name="ledger_transaction",
    )


def downgrade() -> None:
    op.create_index(
        op.f("ix_ledger_transaction_tenant_id_campaign_id_created_at"),
        "ledger_transaction",
        ["tenant_id", "campaign_id", "created_at"],
    )
    op.drop_index(
        op.f("ix_ledger_transaction_tenant_id_campaign_id_created_at_id"),
        table_name="ledger_transaction",
    )
    op.drop_index(op.f("ix_ledger_transaction_tenant_id_agent_id"), table_name="ledger_transaction")
    op.drop_constraint(op.f("ck_ledger_transaction_amount_sign"), "ledger_transaction")
    op.drop_constraint(op.f("ck_ledger_transaction_kind"), "ledger_transaction")
    op.drop_constraint(op.f("fk_ledger_transaction_tenant_id_agent_id_agent"), "ledger_transaction")
    op.alter_column("ledger_transaction", "campaign_id", nullable=True)
    op.drop_column("ledger_transaction", "fingerprint")
    op.drop_column("ledger_transaction", "actor")
    op.drop_column("ledger_transaction", "agent_id")
    op.drop_constraint(op.f("ck_campaign_spent_within_budget"), "campaign")
    op.drop_constraint(op.f("ck_campaign_currency_format"), "campaign")
    op.drop_column("campaign", "spent")
    op.drop_column("campaign", "currency")
