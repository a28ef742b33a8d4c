"""Loaders by primary key: one ``id = ANY($2)`` per batch, always within the tenant."""

from __future__ import annotations

from asyncio import Future
from collections.abc import Iterable, Sequence
from uuid import UUID

from app.stores.postgres.reads import Row
from loaders.base import LoaderContext, TenantLoader


class RowByIdLoader(TenantLoader[UUID, Row | None]):
    """Rows by id. Rows a list already read are remembered, and handed out as loaded
    only if something asks for them: priming every row of every page would make a
    future per row that nothing ever awaits."""

    table: str

    def __init__(self, ctx: LoaderContext) -> None:
        super().__init__(ctx)
        self._known: dict[UUID, Row] = {}

    def remember(self, pk: UUID, row: Row) -> None:
        self._known.setdefault(pk, row)

    def remember_all(self, rows: Iterable[Row]) -> None:
        """Rows of one read, by their ``id``: the same row twice is the same content."""
        self._known.update((row["id"], row) for row in rows)

    def load(self, key: UUID) -> Future[Row | None]:
        row = self._known.pop(key, None)
        if row is not None:
            self.prime(key, row)
        return super().load(key)

    def clear(self, key: UUID) -> RowByIdLoader:
        self._known.pop(key, None)
        super().clear(key)
        return self

    async def fetch(self, keys: Sequence[UUID]) -> list[Row | None]:
        rows = await self.read(
            f"SELECT * FROM {self.table} WHERE tenant_id = $1 AND id = ANY($2::uuid[])",
            self.tenant_id,
            list(keys),
        )
        found = {row["id"]: row for row in rows}
        return [found.get(key) for key in keys]


class AgentByIdLoader(RowByIdLoader):
    table = "agent"


class CampaignByIdLoader(RowByIdLoader):
    table = "campaign"


class MediaAssetByIdLoader(RowByIdLoader):
    table = "media_asset"


class AgentMemoryByIdLoader(RowByIdLoader):
    table = "agent_memory"


class TenantByIdLoader(TenantLoader[UUID, Row | None]):
    """Only ever answers for the caller's own tenant; any other id is simply absent. The
    caller's tenant exists (authentication checked it on the primary), so a replica's miss
    is lag, confirmed on the primary."""

    async def fetch(self, keys: Sequence[UUID]) -> list[Row | None]:
        if self.tenant_id not in keys:
            return [None for _ in keys]
        rows = await self.read_known("SELECT * FROM tenant WHERE id = $1", self.tenant_id)
        row = rows[0] if rows else None
        return [row if key == self.tenant_id else None for key in keys]
