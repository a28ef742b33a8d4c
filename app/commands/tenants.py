"""Creating tenants (an operator's action, from the CLI)."""

from __future__ import annotations

import re
import uuid
from typing import Any

from sqlalchemy import Row, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.errors import BadUserInput, Conflict
from app.stores.postgres.tables import tenant

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")


async def create_tenant(engine: AsyncEngine, slug: str, name: str | None = None) -> Row[Any]:
    if not SLUG.fullmatch(slug):
        raise BadUserInput(
            "A tenant slug is 2-63 characters of a-z, 0-9 and '-', starting with a letter or digit"
        )
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
