"""Loaders for the top-level lists (``agents``, ``campaigns``) and their counts.

A key is a whole list request (filter, ordering, page), so two aliases asking for the same
page share one statement. Rows a page returns are primed into the by-id loaders, so a later
``node`` of the same object in the request costs nothing. The SQL of each shape of request
(which filters, which ordering, first page or after a cursor) is written once and kept, so
the driver prepares it once per connection.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from app.pagination import Page, PageArgs, page_from_rows
from loaders.base import LoaderContext, TenantLoader
from loaders.postgres.rows import RowByIdLoader

ORDER_COLUMNS = frozenset({"created_at", "updated_at", "name"})


@dataclass(frozen=True)
class ListFilter:
    """What a list asks for. ``statuses`` None is no status filter; an empty tuple is the
    empty IN-list, which matches no row (as Hasura's ``_in: []`` and PostGraphile's
    ``in: []`` do): a client that builds its list from a selection of nothing expects
    nothing back, not everything."""

    statuses: tuple[str, ...] | None = None
    search: str | None = None

    @property
    def matches_nothing(self) -> bool:
        """Whether the answer is known to be empty without asking the database."""
        return self.statuses == ()


@dataclass(frozen=True)
class Ordering:
    column: str  # created_at | updated_at | name
    descending: bool

    @property
    def name(self) -> str:
        return f"{self.column}:{'desc' if self.descending else 'asc'}"


@dataclass(frozen=True)
class ListQuery:
    filter: ListFilter
    ordering: Ordering
    page: PageArgs


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def filter_where(flt: ListFilter, args: list[Any]) -> str:
    """The filter's conditions, appending their parameters to ``args`` (``$1`` is the
    tenant)."""
    conditions = ["tenant_id = $1"]
    if flt.statuses is not None:  # an empty array matches nothing: ANY('{}') is false
        args.append(list(flt.statuses))
        conditions.append(f"status = ANY(${len(args)}::text[])")
    if flt.search:
        args.append(f"%{_escape_like(flt.search)}%")
        conditions.append(f"name ILIKE ${len(args)} ESCAPE '\\'")
    return " AND ".join(conditions)


@lru_cache(maxsize=256)
def _page_sql(table: str, where: str, column: str, descending: bool, after: bool) -> str:
    if column not in ORDER_COLUMNS:
        raise ValueError(f"cannot order by {column!r}")
    direction = " DESC" if descending else ""
    if after:
        comparison = "<" if descending else ">"
        where += f" AND ({column}, id) {comparison} ($3, $4)"
    return (
        f"SELECT * FROM {table} WHERE {where} ORDER BY {column}{direction}, id{direction} LIMIT $2"
    )


class _PageLoader(TenantLoader[ListQuery, Page]):
    table: str
    by_id: RowByIdLoader

    def __init__(self, ctx: LoaderContext, by_id: RowByIdLoader) -> None:
        super().__init__(ctx)
        self.by_id = by_id

    async def fetch(self, keys: Sequence[ListQuery]) -> list[Page]:
        pages = []
        for key in keys:  # distinct list requests in one tick: rare, one statement each
            # An empty page is known without a statement; built the same way as any other,
            # so past a cursor it still says there were rows before it.
            rows = [] if key.filter.matches_nothing else await self.read(*self._statement(key))
            page = page_from_rows(rows, key.page)
            self.by_id.remember_all(page.rows)
            pages.append(page)
        return pages

    def _statement(self, key: ListQuery) -> tuple[Any, ...]:
        # $1 tenant, $2 limit, $3 and $4 the cursor's position if any, then the filter's.
        args: list[Any] = [self.tenant_id, key.page.first + 1]
        after = key.page.after
        if after is not None:
            args += [after.value, after.pk]
        where = filter_where(key.filter, args)
        sql = _page_sql(
            self.table, where, key.ordering.column, key.ordering.descending, after is not None
        )
        return (sql, *args)


class AgentPageByQueryLoader(_PageLoader):
    table = "agent"


class CampaignPageByQueryLoader(_PageLoader):
    table = "campaign"


class _CountLoader(TenantLoader[ListFilter, int]):
    table: str

    async def fetch(self, keys: Sequence[ListFilter]) -> list[int]:
        counts = []
        for key in keys:
            if key.matches_nothing:  # the same filter the page is read with: 0, as it is empty
                counts.append(0)
                continue
            args: list[Any] = [self.tenant_id]
            where = filter_where(key, args)
            rows = await self.read(f"SELECT count(*) AS n FROM {self.table} WHERE {where}", *args)
            counts.append(int(rows[0]["n"]))
        return counts


class AgentCountByFilterLoader(_CountLoader):
    table = "agent"


class CampaignCountByFilterLoader(_CountLoader):
    table = "campaign"
