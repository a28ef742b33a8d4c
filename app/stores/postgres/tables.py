"""The relational model, as SQLAlchemy Core tables.

Core rather than the ORM: loaders issue one set-based statement per batch and hand rows to
GraphQL types, so identity maps and lazy loading would only hide round trips. Every
tenant-owned table carries ``tenant_id``, and foreign keys between tenant-owned rows include
it, so a membership or a media row can never point across tenants even if code forgets to
check. Alembic migrations (migrations/) create exactly this; a test compares the two.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING)

AGENT_STATUSES = ("ACTIVE", "PAUSED", "RETIRED")
CAMPAIGN_STATUSES = ("DRAFT", "ACTIVE", "PAUSED", "COMPLETED", "ARCHIVED")
MEDIA_KINDS = ("IMAGE", "VIDEO")
MEDIA_STATUSES = ("PENDING", "READY")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _timestamps() -> list[Column[object]]:
    return [
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    ]


LIMIT_COLUMNS = (
    "max_cost",
    "rate_capacity",
    "rate_per_second",
    "client_rate_capacity",
    "client_rate_per_second",
)

tenant = Table(
    "tenant",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("slug", String(63), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # Demand-control overrides (app/ratelimit/limits.py); null means the settings' default.
    Column("max_cost", Integer, nullable=True),
    Column("rate_capacity", Integer, nullable=True),
    Column("rate_per_second", Float, nullable=True),
    Column("client_rate_capacity", Integer, nullable=True),
    Column("client_rate_per_second", Float, nullable=True),
    CheckConstraint("slug ~ '^[a-z0-9][a-z0-9-]{1,62}$'", name="slug_format"),
    *(
        CheckConstraint(f"{name} IS NULL OR {name} > 0", name=f"{name}_positive")
        for name in LIMIT_COLUMNS
    ),
)

agent = Table(
    "agent",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column(
        "tenant_id", UUID(as_uuid=True), ForeignKey("tenant.id", ondelete="CASCADE"), nullable=False
    ),
    Column("name", String(200), nullable=False),
    Column("persona", Text, nullable=False, server_default=""),
    Column("status", String(16), nullable=False, server_default="ACTIVE"),
    *_timestamps(),
    UniqueConstraint("tenant_id", "id"),
    CheckConstraint(_in("status", AGENT_STATUSES), name="status"),
    Index(None, "tenant_id", "created_at", "id"),
    Index(None, "tenant_id", "name", "id"),
    Index(None, "tenant_id", "updated_at", "id"),
)

campaign = Table(
    "campaign",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column(
        "tenant_id", UUID(as_uuid=True), ForeignKey("tenant.id", ondelete="CASCADE"), nullable=False
    ),
    Column("name", String(200), nullable=False),
    Column("goal", Text, nullable=False, server_default=""),
    Column("status", String(16), nullable=False, server_default="DRAFT"),
    Column("budget", Numeric(14, 2), nullable=False, server_default=text("0")),
    Column("starts_at", DateTime(timezone=True), nullable=True),
    Column("ends_at", DateTime(timezone=True), nullable=True),
    *_timestamps(),
    UniqueConstraint("tenant_id", "id"),
    CheckConstraint(_in("status", CAMPAIGN_STATUSES), name="status"),
    CheckConstraint("budget >= 0", name="budget_non_negative"),
    CheckConstraint("ends_at IS NULL OR starts_at IS NULL OR ends_at > starts_at", name="dates"),
    # The ledger (migration 0005): the campaign's currency, and the running total of its
    # transactions, kept in the same transaction as each one so the budget is a row rule.
    Column("currency", String(3), nullable=False, server_default="USD"),
    Column("spent", Numeric(14, 2), nullable=False, server_default=text("0")),
    CheckConstraint("currency ~ '^[A-Z]{3}$'", name="currency_format"),
    CheckConstraint("spent >= 0 AND spent <= budget", name="spent_within_budget"),
    Index(None, "tenant_id", "created_at", "id"),
    Index(None, "tenant_id", "name", "id"),
    Index(None, "tenant_id", "updated_at", "id"),
)

campaign_agent = Table(
    "campaign_agent",
    metadata,
    Column("tenant_id", UUID(as_uuid=True), nullable=False),
    Column("campaign_id", UUID(as_uuid=True), primary_key=True),
    Column("agent_id", UUID(as_uuid=True), primary_key=True),
    Column("assigned_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    ForeignKeyConstraint(
        ["tenant_id", "campaign_id"], ["campaign.tenant_id", "campaign.id"], ondelete="CASCADE"
    ),
    ForeignKeyConstraint(
        ["tenant_id", "agent_id"], ["agent.tenant_id", "agent.id"], ondelete="CASCADE"
    ),
    # Serves Campaign.agents (PK prefix) and Agent.campaigns (this index), both in page order.
    Index(None, "campaign_id", "assigned_at", "agent_id"),
    Index(None, "agent_id", "assigned_at", "campaign_id"),
)

media_asset = Table(
    "media_asset",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("tenant_id", UUID(as_uuid=True), nullable=False),
    Column("campaign_id", UUID(as_uuid=True), nullable=False),
    Column("object_key", String(1024), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),
    Column("content_type", String(127), nullable=False),
    Column("filename", String(255), nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    Column("checksum", String(128), nullable=True),
    Column("caption", Text, nullable=False, server_default=""),
    Column("status", String(16), nullable=False, server_default="PENDING"),
    *_timestamps(),
    ForeignKeyConstraint(
        ["tenant_id", "campaign_id"], ["campaign.tenant_id", "campaign.id"], ondelete="CASCADE"
    ),
    CheckConstraint(_in("kind", MEDIA_KINDS), name="kind"),
    CheckConstraint(_in("status", MEDIA_STATUSES), name="status"),
    CheckConstraint("size_bytes >= 0", name="size_non_negative"),
    Index(None, "tenant_id", "campaign_id", "created_at", "id"),
)

ledger_transaction = Table(
    "ledger_transaction",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column(
        "tenant_id", UUID(as_uuid=True), ForeignKey("tenant.id", ondelete="CASCADE"), nullable=False
    ),
    Column("campaign_id", UUID(as_uuid=True), nullable=False),
    Column("amount", Numeric(18, 4), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("description", Text, nullable=False, server_default=""),
    Column("idempotency_key", String(128), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    ForeignKeyConstraint(
        ["tenant_id", "campaign_id"], ["campaign.tenant_id", "campaign.id"], ondelete="RESTRICT"
    ),
    UniqueConstraint("tenant_id", "idempotency_key"),
    CheckConstraint("currency ~ '^[A-Z]{3}$'", name="currency_format"),
    # Migration 0005: who, for which agent, and a digest of the input its key was first used
    # with (a retry must match it).
    Column("agent_id", UUID(as_uuid=True), nullable=True),
    Column("actor", String(200), nullable=False, server_default=""),
    Column("fingerprint", String(64), nullable=False, server_default=""),
    ForeignKeyConstraint(
        ["tenant_id", "agent_id"], ["agent.tenant_id", "agent.id"], ondelete="RESTRICT"
    ),
    CheckConstraint("kind IN ('SPEND', 'REFUND', 'ADJUSTMENT')", name="kind"),
    CheckConstraint("amount <> 0 AND (kind = 'ADJUSTMENT' OR amount > 0)", name="amount_sign"),
    Index(None, "tenant_id", "campaign_id", "created_at", "id"),
    Index(None, "tenant_id", "agent_id"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column(
        "tenant_id", UUID(as_uuid=True), ForeignKey("tenant.id", ondelete="CASCADE"), nullable=False
    ),
    Column("actor", String(200), nullable=False),
    Column("action", String(64), nullable=False),
    Column("entity_type", String(64), nullable=False),
    Column("entity_id", UUID(as_uuid=True), nullable=False),
    Column("before", JSONB, nullable=True),
    Column("after", JSONB, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index(None, "tenant_id", "entity_type", "entity_id", "id"),
    # Migration 0006: the campaign or agent the change belongs to, as its outbox event says.
    Column("aggregate_type", String(64), nullable=False),
    Column("aggregate_id", UUID(as_uuid=True), nullable=False),
    Index(None, "tenant_id", "aggregate_type", "aggregate_id", "id"),
    Index(None, "tenant_id", "id"),
)

# Tenant API keys (app/api_keys.py): the key's SHA-256, never the key; `prefix` names it.
api_key = Table(
    "api_key",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column(
        "tenant_id", UUID(as_uuid=True), ForeignKey("tenant.id", ondelete="CASCADE"), nullable=False
    ),
    Column("name", String(200), nullable=False),
    Column("role", String(16), nullable=False),
    Column("prefix", String(32), nullable=False, unique=True),
    Column("secret_hash", String(64), nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("last_used_at", DateTime(timezone=True), nullable=True),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    CheckConstraint("role IN ('viewer', 'editor', 'admin')", name="role"),
    Index(None, "tenant_id", "created_at", "id"),
)

# Documents a client's build registered (`chimera documents add`): the safelist of
# CHIMERA_TRUSTED_DOCUMENTS=only. Not per tenant: one application's queries serve them all.
trusted_document = Table(
    "trusted_document",
    metadata,
    Column("id", String(64), primary_key=True),  # the SHA-256 of the body, hex
    Column("body", Text, nullable=False),
    Column("name", String(200), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("id ~ '^[0-9a-f]{64}$'", name="id_sha256"),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column(
        "tenant_id", UUID(as_uuid=True), ForeignKey("tenant.id", ondelete="CASCADE"), nullable=False
    ),
    Column("aggregate_type", String(64), nullable=False),
    Column("aggregate_id", UUID(as_uuid=True), nullable=False),
    Column("event_type", String(64), nullable=False),
    Column("payload", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("published_at", DateTime(timezone=True), nullable=True),
    Column("attempts", BigInteger, nullable=False, server_default=text("0")),
    # The indexer is a second consumer of the same events: it marks each one indexed (or
    # not relevant) itself, retries with backoff, and gives up after a bounded number of
    # attempts, leaving the event as a dead letter that `chimera doctor` reports.
    Column("indexed_at", DateTime(timezone=True), nullable=True),
    Column("index_attempts", Integer, nullable=False, server_default=text("0")),
    Column("index_next_at", DateTime(timezone=True), nullable=True),
    Column("index_error", Text, nullable=True),
    # Migration 0013: the traceparent of the request that wrote the event, when it was traced.
    Column("traceparent", String(55), nullable=True),
    # The relay reads unpublished events in commit order; this keeps that scan small.
    Index("ix_outbox_unpublished", "id", postgresql_where=text("published_at IS NULL")),
    Index("ix_outbox_unindexed", "id", postgresql_where=text("indexed_at IS NULL")),
    # The metrics consumer's state (migration 0008): when the event was added to its minute.
    Column("metrics_applied_at", DateTime(timezone=True), nullable=True),
    Index(
        "ix_outbox_metrics_pending",
        "id",
        postgresql_where=text(
            "metrics_applied_at IS NULL AND event_type IN ('ENGAGEMENT', 'SPEND')"
        ),
    ),
)

agent_memory = Table(
    "agent_memory",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("tenant_id", UUID(as_uuid=True), nullable=False),
    Column("agent_id", UUID(as_uuid=True), nullable=False),
    Column("text", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    ForeignKeyConstraint(
        ["tenant_id", "agent_id"], ["agent.tenant_id", "agent.id"], ondelete="CASCADE"
    ),
    Index(None, "tenant_id", "agent_id", "created_at", "id"),
)

object_tombstone = Table(
    "object_tombstone",
    metadata,
    # Objects whose rows are gone but whose bytes may still be in storage: written in the
    # same transaction that deletes the row, removed once the store confirms the delete, so
    # a failed delete is retried by the sweeper instead of leaking the object.
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column(
        "tenant_id", UUID(as_uuid=True), ForeignKey("tenant.id", ondelete="CASCADE"), nullable=False
    ),
    Column("object_key", String(1024), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("attempts", BigInteger, nullable=False, server_default=text("0")),
    Column("last_error", Text, nullable=True),
)

# Idempotency keys of recordEngagement, for a bounded window (migration 0007).
engagement_key = Table(
    "engagement_key",
    metadata,
    Column(
        "tenant_id",
        UUID(as_uuid=True),
        ForeignKey("tenant.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("key", String(128), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("event_id", BigInteger, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index(None, "created_at"),
)

# Engagement counted and money spent per campaign and minute (migration 0008), written by
# the metrics consumer from committed events.
campaign_metric = Table(
    "campaign_metric",
    metadata,
    Column("tenant_id", UUID(as_uuid=True), primary_key=True),
    Column("campaign_id", UUID(as_uuid=True), primary_key=True),
    Column("minute", DateTime(timezone=True), primary_key=True),
    *(
        Column(name, BigInteger, nullable=False, server_default=text("0"))
        for name in ("impressions", "clicks", "likes", "shares", "comments")
    ),
    Column("spend", Numeric(14, 2), nullable=False, server_default=text("0")),
    ForeignKeyConstraint(
        ["tenant_id", "campaign_id"], ["campaign.tenant_id", "campaign.id"], ondelete="CASCADE"
    ),
    Index(None, "minute"),
)
