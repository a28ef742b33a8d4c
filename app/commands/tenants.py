"""Creating tenants (an operator's action, from the CLI)."""

from __future__ import annotations

import re
import uuid
from typing import Any

from sqlalchemy import Row, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.errors import BadUserInput, Conflict
from app.stores.postgres.tables import LIMIT_COLUMNS, tenant
from app.validation import clean_name

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")


async def create_tenant(engine: AsyncEngine, slug: str, name: str | None = None) -> Row[Any]:
    """A new tenant; its name, when given, is held to the rules the API holds every other
    name to (app/validation.py): the dashboard and logs show it, so no control characters,
    and a length the column takes, refused by name rather than by the database."""
    if not SLUG.fullmatch(slug):
        raise BadUserInput(
            "A tenant slug is 2-63 characters of a-z, 0-9 and '-', starting with a letter or digit"
        )
    if name is not None:
        name = clean_name(name, "name")
    try:
        async with engine.begin() as conn:
            return (
                await conn.execute(
                    insert(tenant)
                    .values(id=uuid.uuid4(), slug=slug, name=name or slug)
                    .returning(*tenant.c)
                )
            ).one()
    except IntegrityError as exc:  # the unique slug, also under concurrent creates
        raise Conflict(f"Tenant {slug!r} already exists") from exc


async def tenant_by_slug(engine: AsyncEngine, slug: str) -> Row[Any] | None:
    async with engine.connect() as conn:
        return (await conn.execute(select(tenant).where(tenant.c.slug == slug))).first()


async def set_tenant_limits(
    engine: AsyncEngine, slug: str, changes: dict[str, float | int | None]
) -> Row[Any] | None:
    """Set (a number) or clear (None: back to the settings' default) a tenant's limits; the
    row as it now is, or None when there is no such tenant. Instances read it within a
    minute (app/known_tenants.py)."""
    unknown = set(changes) - set(LIMIT_COLUMNS)
    if unknown:
        raise BadUserInput(f"not a tenant limit: {', '.join(sorted(unknown))}")
    for name, value in changes.items():
        if value is not None and value <= 0:
            raise BadUserInput(f"{name} must be greater than 0")
    async with engine.begin() as conn:
        if not changes:
            return (await conn.execute(select(tenant).where(tenant.c.slug == slug))).first()
        changed = update(tenant).where(tenant.c.slug == slug).values(**changes)
        return (await conn.execute(changed.returning(*tenant.c))).first()
