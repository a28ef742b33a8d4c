"""Audit history by aggregate: which campaign or agent each audited change belongs to.

`Campaign.history` must show the campaign's own changes and those of what hangs off it
(membership, media, transactions); their audit rows name the membership, asset or
transaction, so each row now also names its aggregate, as its outbox event always did.
Rows written before this revision get their own entity as aggregate (the trigger that keeps
the log append-only is lifted for that one backfill, inside this migration's transaction).
Two indexes serve the reads: an aggregate's history newest first, and a tenant's log newest
first. Retention: the append-only trigger now lets a DELETE through for rows older than the
transaction-local setting `chimera.audit_prune_before`, which only `chimera audit prune` sets
(and audits); updates stay refused, and so does every delete without it.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 11:50:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("audit_log", sa.Column("aggregate_type", sa.String(length=64), nullable=True))
    op.add_column("audit_log", sa.Column("aggregate_id", sa.UUID(), nullable=True))
    op.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")
    op.execute("UPDATE audit_log SET aggregate_type = entity_type, aggregate_id = entity_id")
    op.execute("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only")
    op.alter_column("audit_log", "aggregate_type", nullable=False)
    op.alter_column("audit_log", "aggregate_id", nullable=False)
    op.create_index(
        op.f("ix_audit_log_tenant_id_aggregate_type_aggregate_id_id"),
        "audit_log",
        ["tenant_id", "aggregate_type", "aggregate_id", "id"],
    )
    op.create_index(op.f("ix_audit_log_tenant_id_id"), "audit_log", ["tenant_id", "id"])
    op.execute(PRUNABLE)


PRUNABLE = """
CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' AND OLD.created_at <
     nullif(current_setting('chimera.audit_prune_before', true), '')::timestamptz THEN
    RETURN OLD;
  END IF;
  RAISE EXCEPTION 'audit_log is append-only';
END $$
"""
APPEND_ONLY = """
CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN RAISE EXCEPTION 'audit_log is append-only'; END $$
"""


def downgrade() -> None:
    op.execute(APPEND_ONLY)
    op.drop_index(op.f("ix_audit_log_tenant_id_id"), table_name="audit_log")
    op.drop_index(
        op.f("ix_audit_log_tenant_id_aggregate_type_aggregate_id_id"), table_name="audit_log"
    )
    op.drop_column("audit_log", "aggregate_id")
    op.drop_column("audit_log", "aggregate_type")
