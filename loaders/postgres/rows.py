"""Loaders by primary key: one ``WHERE id = ANY(...)`` per batch, always within the tenant."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from sqlalchemy import Row, Table, select

from app.stores.postgres.tables import agent, agent_memory, campaign, media_asset, tenant
from loaders.base import TenantLoader


class _RowByIdLoader(TenantLoader[UUID, Row[Any] | None]):
    table: Table

    async def fetch(self, keys: Sequence[UUID]) -> list[Row[Any] | None]:
        query = select(self.table).where(
            self.table.c.tenant_id == self.tenant_id, self.table.c.id.in_(keys)
        )
        async with self.ctx.engine.connect() as conn:
            rows = {row.id: row for row in await conn.execute(query)}
        return [rows.get(key) for key in keys]


class AgentByIdLoader(_RowByIdLoader):
    table = agent


class CampaignByIdLoader(_RowByIdLoader):
    table = campaign


class MediaAssetByIdLoader(_RowByIdLoader):
    table = media_asset


class AgentMemoryByIdLoader(_RowByIdLoader):
    table = agent_memory


class TenantByIdLoader(TenantLoader[UUID, Row[Any] | None]):
    """Only ever answers for the caller's own tenant; any other id is simply absent."""

    async def fetch(self, keys: Sequence[UUID]) -> list[Row[Any] | None]:
        if self.tenant_id not in keys:
            return [None for _ in keys]
        query = select(tenant).where(tenant.c.id == self.tenant_id)
        async with self.ctx.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return [row if key == self.tenant_id else None for key in keys]
