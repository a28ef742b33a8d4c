"""Per-tenant overrides of the demand-control limits (null: the settings' defaults).

Set by `chimera tenant limits SLUG ...`; read with the tenant's existence check, which every
instance repeats at most once a minute per tenant, so a change reaches every instance within
a minute.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 04:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (
    ("max_cost", sa.Integer()),
    ("rate_capacity", sa.Integer()),
    ("rate_per_second", sa.Float()),
    ("client_rate_capacity", sa.Integer()),
    ("client_rate_per_second", sa.Float()),
)


def upgrade() -> None:
    for name, kind in COLUMNS:
        op.add_column("tenant", sa.Column(name, kind, nullable=True))
        op.create_check_constraint(
            op.f(f"ck_tenant_{name}_positive"), "tenant", f"{name} IS NULL OR {name} > 0"
        )


def downgrade() -> None:
    for name, _ in reversed(COLUMNS):
        op.drop_constraint(op.f(f"ck_tenant_{name}_positive"), "tenant", type_="check")
        op.drop_column("tenant", name)
