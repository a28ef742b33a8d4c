"""Where TimescaleDB is installed, `campaign_metric` becomes a hypertable with a retention policy.

Chimera needs no extension: on plain PostgreSQL this migration changes nothing and
`chimera metrics prune --before DATE` stays the retention job (ADR 0022). An operator who runs
TimescaleDB (the extension created in the database, or available and preloaded so that this
migration can create it) gets the minute rows chunked by week and dropped after
``chimera.metrics_retention`` (a database setting, default 400 days) by Timescale's own job.
Reads and the consumer's upserts are the same SQL on both: a hypertable is still a table.

Any failure to set Timescale up (not preloaded, not permitted) is reported as a NOTICE and
leaves the plain table, so an upgrade never fails for want of an optional engine. There is
no downgrade to a plain table (Timescale has none either); 0008's downgrade drops the table,
hypertable or not.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 14:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

HYPERTABLE = """
DO $timescale$
DECLARE
  retention interval := coalesce(
    nullif(current_setting('chimera.metrics_retention', true), '')::interval, '400 days');
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb') THEN
    RETURN;
  END IF;
  BEGIN
    CREATE EXTENSION IF NOT EXISTS timescaledb;
    PERFORM create_hypertable('campaign_metric', 'minute',
      chunk_time_interval => interval '7 days', migrate_data => true, if_not_exists => true);
    PERFORM add_retention_policy('campaign_metric', retention, if_not_exists => true);
  EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'campaign_metric stays a plain table (TimescaleDB not usable: %)', SQLERRM;
  END;
END
$timescale$;
"""


def upgrade() -> None:
    op.execute(HYPERTABLE)


def downgrade() -> None:
    """Nothing to undo on plain PostgreSQL; a hypertable stays one until 0008 drops it."""
