"""Running Alembic from inside the application's event loop.

Alembic is synchronous; it is driven here on a connection of the async engine through
``run_sync``, the pattern Alembic's cookbook gives for asyncio applications, so that the CLI,
the service start-up and the tests all migrate the same way.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util import CommandError
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

import migrations

MIGRATION_LOCK = 0x43484D52  # "CHMR": the advisory lock id held while migrating
MIGRATIONS_DIR = Path(migrations.__file__).resolve().parent


class MigrationError(RuntimeError):
    """Alembic refused a revision (unknown, ambiguous, not reachable): a mistyped argument,
    not a bug, so the CLI reports it in one line rather than as Alembic's traceback."""


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    await _run(engine, lambda cfg: command.upgrade(cfg, revision))


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    await _run(engine, lambda cfg: command.downgrade(cfg, revision))


async def current_revision(engine: AsyncEngine) -> str | None:
    def read(conn: Connection) -> str | None:
        return MigrationContext.configure(conn).get_current_revision()

    async with engine.connect() as conn:
        return await conn.run_sync(read)


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


async def _run(engine: AsyncEngine, action: object) -> None:
    def run(conn: Connection) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        assert callable(action)
        action(cfg)

    try:
        async with engine.begin() as conn:
            # Replicas starting together on a fresh database take turns instead of racing on
            # DDL.
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
            await conn.run_sync(run)
    except (CommandError, RevisionError) as exc:
        # The transaction is rolled back: nothing of a refused migration is left applied.
        raise MigrationError(
            f"{exc}; the revisions run from base to {head_revision()} (head), "
            "in migrations/versions"
        ) from exc
