"""Loaders by primary key: one ``id = ANY($2)`` per batch, always within the tenant."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from app.stores.postgres.reads import Row
from loaders.base import TenantLoader


class _RowByIdLoader(TenantLoader[UUID, Row | None]):
    table: str

    async def fetch(self, keys: Sequence[UUID]) -> list[Row | None]:
        rows = await self.read(
            f"SELECT * FROM {self.table} WHERE tenant_id = $1 AND id = ANY($2::uuid[])",
            self.tenant_id,
            list(keys),
        )
        found = {row["id"]: row for row in rows}
        return [found.get(key) for key in keys]


class AgentByIdLoader(_RowByIdLoader):
    table = "agent"


class CampaignByIdLoader(_RowByIdLoader):
    table = "campaign"


class MediaAssetByIdLoader(_RowByIdLoader):
    table = "media_asset"


class AgentMemoryByIdLoader(_RowByIdLoader):
    table = "agent_memory"


class TenantByIdLoader(TenantLoader[UUID, Row | None]):
    """Only ever answers for the caller's own tenant; any other id is simply absent."""

    async def fetch(self, keys: Sequence[UUID]) -> list[Row | None]:
        if self.tenant_id not in keys:
            return [None for _ in keys]
        rows = await self.read("SELECT * FROM tenant WHERE id = $1", self.tenant_id)
        row = rows[0] if rows else None
        return [row if key == self.tenant_id else None for key in keys]
