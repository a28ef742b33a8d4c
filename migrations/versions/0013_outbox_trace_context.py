"""The trace context of the write that caused each outbox event.

A mutation's traceparent (W3C Trace Context), stored with the events it emits, so that the
relay's publish, the indexer's embedding and each subscriber's delivery can be traced as
spans linked to that mutation (docs/operations.md#following-a-write). NULL when the write
was not traced (tracing off, or the request not sampled).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 10:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable without a default: PostgreSQL adds it without rewriting the table.
    op.add_column("outbox", sa.Column("traceparent", sa.String(length=55), nullable=True))


def downgrade() -> None:
    op.drop_column("outbox", "traceparent")
