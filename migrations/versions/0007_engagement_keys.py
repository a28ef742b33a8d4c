"""Idempotency keys of recordEngagement, held for a bounded window.

A retried increment must count once. The key, a digest of the increment it was first used
with, and the event it produced are written in the transaction of that event; a retry within
the window finds them and adds nothing. After the window (24 hours, app/commands/engagement.py)
a key may be used again, and the sweeper deletes expired keys, so the table stays bounded.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "engagement_key",
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenant.id"],
            name=op.f("fk_engagement_key_tenant_id_tenant"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "key", name=op.f("pk_engagement_key")),
    )
    op.create_index(op.f("ix_engagement_key_created_at"), "engagement_key", ["created_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_engagement_key_created_at"), table_name="engagement_key")
    op.drop_table("engagement_key")
