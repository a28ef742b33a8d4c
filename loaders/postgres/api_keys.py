"""A tenant's API keys, newest first, a page at a time (admins list them)."""

from __future__ import annotations

from collections.abc import Sequence

from app.pagination import Page, PageArgs, page_from_rows
from loaders.base import TenantLoader

API_KEY_ORDER = "created_at:desc"
_COLUMNS = "id, tenant_id, name, role, prefix, created_by, created_at, last_used_at, revoked_at"
FIRST_PAGE = (
    f"SELECT {_COLUMNS} FROM api_key WHERE tenant_id = $1 "
    "ORDER BY created_at DESC, id DESC LIMIT $2"
)
NEXT_PAGE = (
    f"SELECT {_COLUMNS} FROM api_key WHERE tenant_id = $1 "
    "AND (created_at, id) < ($3, $4) ORDER BY created_at DESC, id DESC LIMIT $2"
)


class ApiKeysLoader(TenantLoader[PageArgs, Page]):
    """Never the key's hash: a page holds what a listing shows."""

    async def fetch(self, keys: Sequence[PageArgs]) -> list[Page]:
        pages = []
        for args in keys:  # one listing per request, in practice
            if args.after is None:
                rows = await self.read(FIRST_PAGE, self.tenant_id, args.first + 1)
            else:
                rows = await self.read(
                    NEXT_PAGE, self.tenant_id, args.first + 1, args.after.value, args.after.pk
                )
            pages.append(page_from_rows(rows, args))
        return pages


class ApiKeyCountLoader(TenantLoader[str, int]):
    """Keyed by "all": a loader needs a key, and a tenant has one list of keys."""

    async def fetch(self, keys: Sequence[str]) -> list[int]:
        rows = await self.read(
            "SELECT count(*) AS n FROM api_key WHERE tenant_id = $1", self.tenant_id
        )
        return [int(rows[0]["n"])] * len(keys)
