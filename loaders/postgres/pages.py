"""Loaders for the top-level lists (``agents``, ``campaigns``) and their counts.

A key is a whole list request (filter, ordering, page), so two aliases asking for the same
page share one statement. Rows a page returns are primed into the by-id loaders, so a later
``node`` of the same object in the request costs nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Table, func, select, tuple_

from app.pagination import Page, PageArgs, page_from_rows
from app.stores.postgres.tables import agent, campaign
from loaders.base import LoaderContext, TenantLoader


@dataclass(frozen=True)
class ListFilter:
    statuses: tuple[str, ...] = ()
    search: str | None = None


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


def filter_conditions(
    table: Table, tenant_id: object, flt: ListFilter
) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [table.c.tenant_id == tenant_id]
    if flt.statuses:
        conditions.append(table.c.status.in_(flt.statuses))
    if flt.search:
        conditions.append(table.c.name.ilike(f"%{_escape_like(flt.search)}%", escape="\\"))
    return conditions


class _PageLoader(TenantLoader[ListQuery, Page]):
    table: Table
    by_id: TenantLoader[Any, Any]

    def __init__(self, ctx: LoaderContext, by_id: TenantLoader[Any, Any]) -> None:
        super().__init__(ctx)
        self.by_id = by_id

    async def fetch(self, keys: Sequence[ListQuery]) -> list[Page]:
        pages = []
        async with self.ctx.engine.connect() as conn:
            for key in keys:  # distinct list requests in one tick: rare, one statement each
                rows = list(await conn.execute(self._statement(key)))
                for row in rows[: key.page.first]:
                    self.by_id.prime(row.id, row)
                pages.append(page_from_rows(rows, key.page))
        return pages

    def _statement(self, key: ListQuery) -> Any:
        table = self.table
        sort = table.c[key.ordering.column]
        conditions = filter_conditions(table, self.tenant_id, key.filter)
        after = key.page.after
        if after is not None:
            bound = tuple_(sort, table.c.id)
            position = tuple_(after.value, after.pk)
            conditions.append(bound < position if key.ordering.descending else bound > position)
        order = (sort.desc(), table.c.id.desc()) if key.ordering.descending else (sort, table.c.id)
        return select(table).where(*conditions).order_by(*order).limit(key.page.first + 1)


class AgentPageByQueryLoader(_PageLoader):
    table = agent


class CampaignPageByQueryLoader(_PageLoader):
    table = campaign


class _CountLoader(TenantLoader[ListFilter, int]):
    table: Table

    async def fetch(self, keys: Sequence[ListFilter]) -> list[int]:
        counts = []
        async with self.ctx.engine.connect() as conn:
            for key in keys:
                query = (
                    select(func.count())
                    .select_from(self.table)
                    .where(*filter_conditions(self.table, self.tenant_id, key))
                )
                counts.append(int((await conn.execute(query)).scalar_one()))
        return counts


class AgentCountByFilterLoader(_CountLoader):
    table = agent


class CampaignCountByFilterLoader(_CountLoader):
    table = campaign
