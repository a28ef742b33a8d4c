"""Tenant API keys for server-to-server clients: stored as a hash, named by a prefix.

`chimera apikey create` prints a key once; the table keeps its SHA-256 and the prefix that
identifies it in listings and logs. Revoked keys stay (revoked_at), so the audit trail and
listings keep naming them.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 04:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_key",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("prefix", sa.String(length=32), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("role IN ('viewer', 'editor', 'admin')", name=op.f("ck_api_key_role")),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenant.id"],
            name=op.f("fk_api_key_tenant_id_tenant"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_key")),
        sa.UniqueConstraint("prefix", name=op.f("uq_api_key_prefix")),
    )
    op.create_index(
        op.f("ix_api_key_tenant_id_created_at_id"), "api_key", ["tenant_id", "created_at", "id"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_api_key_tenant_id_created_at_id"), table_name="api_key")
    op.drop_table("api_key")
