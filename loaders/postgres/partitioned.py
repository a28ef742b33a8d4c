"""The shared shape of nested connections: pages of children for many parents at once.

A subclass writes one statement that ranks child rows per parent (``parent_id`` and ``rank``
columns) and keeps ranks up to ``first + 1``; this base groups keys by page arguments, runs
one statement per distinct (first, after), splits the rows per parent and primes the by-id
loader, so ``Campaign.agents`` on a page of 50 campaigns costs one query, not 50.
"""

from __future__ import annotations

from abc import abstractmethod
from collections import defaultdict
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from sqlalchemy import Row

from app.pagination import Page, PageArgs, page_from_rows
from loaders.base import LoaderContext, TenantLoader

ChildPageKey = tuple[UUID, PageArgs]


class PartitionedPageLoader(TenantLoader[ChildPageKey, Page]):
    def __init__(self, ctx: LoaderContext, by_id: TenantLoader[Any, Any]) -> None:
        super().__init__(ctx)
        self.by_id = by_id

    async def fetch(self, keys: Sequence[ChildPageKey]) -> list[Page]:
        groups: dict[PageArgs, list[UUID]] = defaultdict(list)
        for parent_id, args in keys:
            groups[args].append(parent_id)
        found: dict[ChildPageKey, list[Row[Any]]] = defaultdict(list)
        async with self.ctx.engine.connect() as conn:
            for args, parent_ids in groups.items():
                for row in await conn.execute(self.statement(parent_ids, args)):
                    found[(row.parent_id, args)].append(row)
        pages = []
        for key in keys:
            page = page_from_rows(found.get(key, []), key[1])
            for row in page.rows:
                self.by_id.prime(row.id, row)
            pages.append(page)
        return pages

    @abstractmethod
    def statement(self, parent_ids: list[UUID], args: PageArgs) -> Any:
        """Child rows of ``parent_ids`` with ``parent_id`` and ``rank`` columns, ranks cut."""
