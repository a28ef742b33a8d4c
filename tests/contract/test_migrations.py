"""Alembic migrations: upgrade and downgrade both work, and they build exactly the model."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from app import migrations
from app.stores.postgres.engine import create_engine
from app.stores.postgres.tables import metadata
from tests.engines import create_database, drop_database


@pytest_asyncio.fixture
async def scratch(pg_server_url: str) -> AsyncIterator[AsyncEngine]:
    url = await create_database(pg_server_url, prefix="chimera_migrations")
    engine = create_engine(url, timeout=10)
    yield engine
    await engine.dispose()
    await drop_database(url)


async def _run(engine: AsyncEngine, *statements: str) -> None:
    async with engine.begin() as conn:
        for statement in statements:
            await conn.execute(text(statement))


async def _tables(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))


async def test_upgrade_down_to_base_and_up_again(scratch: AsyncEngine) -> None:
    await migrations.upgrade(scratch)
    assert await migrations.current_revision(scratch) == migrations.head_revision()
    assert {
        "tenant",
        "agent",
        "campaign",
        "campaign_agent",
        "media_asset",
        "ledger_transaction",
        "audit_log",
        "outbox",
    } <= await _tables(scratch)
    await migrations.downgrade(scratch, "base")
    assert await migrations.current_revision(scratch) is None
    assert await _tables(scratch) <= {"alembic_version"}
    await migrations.upgrade(scratch)
    assert await migrations.current_revision(scratch) == migrations.head_revision()


async def test_migrated_schema_matches_the_table_definitions(scratch: AsyncEngine) -> None:
    await migrations.upgrade(scratch)

    def diff(conn: Connection) -> list[object]:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))

    async with scratch.connect() as conn:
        assert await conn.run_sync(diff) == []


async def test_audit_log_rejects_updates_and_deletes(scratch: AsyncEngine) -> None:
    await migrations.upgrade(scratch)
    await _run(
        scratch,
        "INSERT INTO tenant (id, slug, name) VALUES ('00000000-0000-0000-0000-000000000001', 'aa', 'a')",
        "INSERT INTO audit_log (tenant_id, actor, action, entity_type, entity_id, "
        "aggregate_type, aggregate_id) VALUES ('00000000-0000-0000-0000-000000000001', 'x', 'y', "
        "'z', '00000000-0000-0000-0000-000000000002', 'z', '00000000-0000-0000-0000-000000000002')",
    )
    for statement in ("UPDATE audit_log SET actor = 'forged'", "DELETE FROM audit_log"):
        with pytest.raises(DBAPIError, match="append-only"):
            async with scratch.begin() as conn:
                await conn.execute(text(statement))


async def test_membership_cannot_cross_tenants(scratch: AsyncEngine) -> None:
    """Composite foreign keys keep a campaign of one tenant from holding another's agent."""
    await migrations.upgrade(scratch)
    a, b = "00000000-0000-0000-0000-00000000000a", "00000000-0000-0000-0000-00000000000b"
    agent, campaign = "00000000-0000-0000-0000-0000000000a1", "00000000-0000-0000-0000-0000000000b1"
    await _run(
        scratch,
        f"INSERT INTO tenant (id, slug, name) VALUES ('{a}', 'ta', 'a'), ('{b}', 'tb', 'b')",
        f"INSERT INTO agent (id, tenant_id, name) VALUES ('{agent}', '{a}', 'x')",
        f"INSERT INTO campaign (id, tenant_id, name) VALUES ('{campaign}', '{b}', 'y')",
    )
    for tenant in (a, b):
        with pytest.raises(DBAPIError, match="foreign key"):
            async with scratch.begin() as conn:
                await conn.execute(
                    text(
                        "INSERT INTO campaign_agent (tenant_id, campaign_id, agent_id) "
                        f"VALUES ('{tenant}', '{campaign}', '{agent}')"
                    )
                )


async def test_audit_rows_written_before_0006_belong_to_their_own_entity(
    scratch: AsyncEngine,
) -> None:
    """The aggregate backfill lifts the append-only trigger for itself only."""
    await migrations.upgrade(scratch, "0005")
    await _run(
        scratch,
        "INSERT INTO tenant (id, slug, name) VALUES ('00000000-0000-0000-0000-000000000001', 'aa', 'a')",
        "INSERT INTO audit_log (tenant_id, actor, action, entity_type, entity_id) VALUES "
        "('00000000-0000-0000-0000-000000000001', 'x', 'y', 'campaign', "
        "'00000000-0000-0000-0000-000000000002')",
    )
    await migrations.upgrade(scratch)
    async with scratch.connect() as conn:
        row = (await conn.execute(text("SELECT aggregate_type, aggregate_id FROM audit_log"))).one()
    assert (row.aggregate_type, str(row.aggregate_id)) == (
        "campaign",
        "00000000-0000-0000-0000-000000000002",
    )
    with pytest.raises(DBAPIError, match="append-only"):
        async with scratch.begin() as conn:
            await conn.execute(text("DELETE FROM audit_log"))


async def _timescale_usable(engine: AsyncEngine) -> bool:
    """Installed in the server and preloaded, as TimescaleDB needs before CREATE EXTENSION."""
    async with engine.connect() as conn:
        found = await conn.execute(
            text(
                "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb' "
                "AND current_setting('shared_preload_libraries') LIKE '%timescaledb%'"
            )
        )
        return found.first() is not None


async def test_without_timescale_the_metrics_stay_a_plain_table_and_upgrade_succeeds(
    scratch: AsyncEngine,
) -> None:
    if await _timescale_usable(scratch):
        pytest.skip("TimescaleDB is installed here: the hypertable test covers this server")
    await migrations.upgrade(scratch)
    async with scratch.connect() as conn:
        kind = await conn.scalar(
            text("SELECT relkind::text FROM pg_class WHERE relname = 'campaign_metric'")
        )
        extension = await conn.scalar(
            text("SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'")
        )
    assert (kind, extension) == ("r", 0)


async def test_with_timescale_the_metrics_become_a_hypertable_with_retention(
    scratch: AsyncEngine,
) -> None:
    if not await _timescale_usable(scratch):
        pytest.skip(
            "TimescaleDB is not installed and preloaded in this PostgreSQL (Debian 12 lacks it)"
        )
    await migrations.upgrade(scratch)
    async with scratch.connect() as conn:
        hypertables = await conn.scalar(
            text(
                "SELECT count(*) FROM timescaledb_information.hypertables "
                "WHERE hypertable_name = 'campaign_metric'"
            )
        )
        retention = await conn.scalar(
            text(
                "SELECT count(*) FROM timescaledb_information.jobs "
                "WHERE hypertable_name = 'campaign_metric' AND proc_name = 'policy_retention'"
            )
        )
    assert (hypertables, retention) == (1, 1)
