"""Engagement and spend over time: per campaign and minute, filled from committed events.

`campaign_metric` holds one row per campaign and minute with the engagement counted and the
money spent in it. The metrics consumer (app/metrics/consumer.py) adds each committed
ENGAGEMENT and SPEND event to its minute and stamps the event's `metrics_applied_at`, in one
transaction, so a replay never counts an event twice. Reads bucket the minutes into minutes,
hours or days of the caller's time zone. Rows are plain PostgreSQL (no TimescaleDB needed);
`chimera metrics prune --before DATE` is the retention job.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 12:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COUNTERS = ("impressions", "clicks", "likes", "shares", "comments")


def upgrade() -> None:
    op.create_table(
        "campaign_metric",
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("campaign_id", sa.UUID(), nullable=False),
        sa.Column("minute", sa.DateTime(timezone=True), nullable=False),
        *(
            sa.Column(name, sa.BigInteger(), server_default=sa.text("0"), nullable=False)
            for name in COUNTERS
        ),
        sa.Column(
            "spend", sa.Numeric(precision=14, scale=2), server_default=sa.text("0"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "campaign_id"],
            ["campaign.tenant_id", "campaign.id"],
            name=op.f("fk_campaign_metric_tenant_id_campaign_id_campaign"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "tenant_id", "campaign_id", "minute", name=op.f("pk_campaign_metric")
        ),
    )
    op.create_index(op.f("ix_campaign_metric_minute"), "campaign_metric", ["minute"])
    op.add_column(
        "outbox", sa.Column("metrics_applied_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.create_index(
        "ix_outbox_metrics_pending",
        "outbox",
        ["id"],
        postgresql_where=sa.text(
            "metrics_applied_at IS NULL AND event_type IN ('ENGAGEMENT', 'SPEND')"
        ),
    )


def downgrade() -> None:
    op.drop_index("ix_outbox_metrics_pending", table_name="outbox")
    op.drop_column("outbox", "metrics_applied_at")
    op.drop_index(op.f("ix_campaign_metric_minute"), table_name="campaign_metric")
    op.drop_table("campaign_metric")
