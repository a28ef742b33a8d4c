"""Trusted documents: the operations a client's build registered ahead of time.

`chimera documents add FILE...` writes them; with CHIMERA_TRUSTED_DOCUMENTS=only they are
the only documents the API runs (app/documents/store.py). Not per tenant: they are a client
application's own queries, shipped to every tenant alike.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 04:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "trusted_document",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint("id ~ '^[0-9a-f]{64}$'", name=op.f("ck_trusted_document_id_sha256")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trusted_document")),
    )


def downgrade() -> None:
    op.drop_table("trusted_document")
