"""Alembic environment.

Migrations run on a connection handed in by app.migrations (inside the caller's event loop),
or, when Alembic's own CLI is used, on a fresh async engine from DATABASE_URL.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from app.settings import load_settings
from app.stores.postgres.engine import create_engine
from app.stores.postgres.tables import metadata

config = context.config


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


async def _run_with_new_engine() -> None:
    settings = load_settings()
    url = config.get_main_option("sqlalchemy.url") or settings.database_url
    if not url:
        raise SystemExit("DATABASE_URL is not set")
    engine = create_engine(url, timeout=settings.store_timeout_seconds)
    try:
        async with engine.connect() as conn:
            await conn.run_sync(_run)
            await conn.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    context.configure(
        url=config.get_main_option("sqlalchemy.url"), target_metadata=metadata, literal_binds=True
    )
    with context.begin_transaction():
        context.run_migrations()
else:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
    else:
        asyncio.run(_run_with_new_engine())
