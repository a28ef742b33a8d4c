"""Agent memories, and the indexer's per-event state on the outbox.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 22:01:26.849185
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "agent_memory",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("agent_id", sa.UUID(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "agent_id"],
            ["agent.tenant_id", "agent.id"],
            name=op.f("fk_agent_memory_tenant_id_agent_id_agent"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_memory")),
    )
    op.create_index(
        op.f("ix_agent_memory_tenant_id_agent_id_created_at_id"),
        "agent_memory",
        ["tenant_id", "agent_id", "created_at", "id"],
        unique=False,
    )
    op.add_column("outbox", sa.Column("indexed_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "outbox",
        sa.Column("index_attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
    )
    op.add_column("outbox", sa.Column("index_next_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("outbox", sa.Column("index_error", sa.Text(), nullable=True))
    op.create_index(
        "ix_outbox_unindexed",
        "outbox",
        ["id"],
        unique=False,
        postgresql_where=sa.text("indexed_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_outbox_unindexed", table_name="outbox", postgresql_where=sa.text("indexed_at IS NULL")
    )
    op.drop_column("outbox", "index_error")
    op.drop_column("outbox", "index_next_at")
    op.drop_column("outbox", "index_attempts")
    op.drop_column("outbox", "indexed_at")
    op.drop_index(
        op.f("ix_agent_memory_tenant_id_agent_id_created_at_id"), table_name="agent_memory"
    )
    op.drop_table("agent_memory")
