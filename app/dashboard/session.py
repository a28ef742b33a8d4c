"""The demo tenant's sign-in, for development: `chimera serve` prints it, the dashboard
fetches it, so a newcomer sees their data without copying a token anywhere."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from app.auth import Role, mint_token
from app.commands.tenants import tenant_by_slug
from app.seed import DEMO_SLUG
from app.settings import Settings


async def demo_token(engine: AsyncEngine, settings: Settings, secret: str) -> str | None:
    """An admin token of the demo tenant; None in production or without a demo tenant."""
    if settings.is_production:
        return None
    demo = await tenant_by_slug(engine, DEMO_SLUG)
    if demo is None:
        return None
    return mint_token(
        secret,
        tenant_id=demo.id,
        tenant_slug=demo.slug,
        role=Role.ADMIN,
        subject="dev",
        ttl_seconds=settings.token_ttl_seconds,
    )
