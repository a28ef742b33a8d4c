"""The shared shape of nested connections: pages of children for many parents at once.

A subclass gives one statement that takes the tenant (``$1``), the parent ids (``$2``), the
page size plus one (``$3``) and, after a cursor, its position (``$4``, ``$5``), and returns
each parent's page with the parent's id as first column, parents in the order given. It is a
``LATERAL`` join: every parent reads its first rows from the child index and stops, however
many children it has. This base runs one statement per distinct (first, after) among the
keys, splits the rows per parent and primes the by-id loader, so ``Campaign.agents`` on a
page of 50 campaigns costs one query, not 50.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from app.pagination import Page, PageArgs, page_from_rows
from app.stores.postgres.reads import Record
from loaders.base import LoaderContext, TenantLoader
from loaders.postgres.rows import RowByIdLoader

ChildPageKey = tuple[UUID, PageArgs]


class PartitionedPageLoader(TenantLoader[ChildPageKey, Page]):
    # The statement for a first page and for a page after a cursor.
    first_page: str
    next_page: str

    def __init__(self, ctx: LoaderContext, by_id: RowByIdLoader) -> None:
        super().__init__(ctx)
        self.by_id = by_id

    async def fetch(self, keys: Sequence[ChildPageKey]) -> list[Page]:
        groups: dict[PageArgs, list[UUID]] = defaultdict(list)
        for parent_id, args in keys:
            groups[args].append(parent_id)
        found: dict[ChildPageKey, list[Record]] = {}
        for args, parent_ids in groups.items():
            # Rows arrive parent by parent (parent id first): one run of rows per parent.
            rows: list[Record] = []
            parent = None
            for row in await self.read(*self.statement(parent_ids, args)):
                if row[0] != parent:
                    parent = row[0]
                    rows = found[(parent, args)] = []
                rows.append(row)
        pages = [page_from_rows(found.get(key, []), key[1]) for key in keys]
        self.by_id.remember_all(row for page in pages for row in page.rows)
        return pages

    def statement(self, parent_ids: list[UUID], args: PageArgs) -> tuple[Any, ...]:
        if args.after is None:
            return (self.first_page, self.tenant_id, parent_ids, args.first + 1)
        after = args.after
        return (self.next_page, self.tenant_id, parent_ids, args.first + 1, after.value, after.pk)


def lateral(child: str, order: str, after: str, outer_order: str) -> tuple[str, str]:
    """The first-page and next-page forms of a per-parent ``LATERAL`` page: ``child`` is a
    ``SELECT ... WHERE ...`` of one parent's rows (parent id ``p.id``), ``order`` its sort,
    ``after`` the condition a row must meet to follow the cursor ``($4, $5)``, and
    ``outer_order`` the same sort on the joined rows ``x``, so each parent's rows keep it."""
    template = (
        "SELECT p.id AS parent_id, x.* "
        "FROM unnest($2::uuid[]) WITH ORDINALITY AS p(id, ord) "
        "CROSS JOIN LATERAL ({child}{extra} ORDER BY {order} LIMIT $3) AS x "
        "ORDER BY p.ord, {outer_order}"
    )
    return (
        template.format(child=child, extra="", order=order, outer_order=outer_order),
        template.format(child=child, extra=f" AND {after}", order=order, outer_order=outer_order),
    )
