"""Relay building blocks: the Node interface and cursor connections with a lazy totalCount.

A connection's parts are resolved in batch form (resolvers/batching.py): the edges of the
50 agent connections on a page of campaigns are one loader round, and an edge's cursor is
encoded only when the query asks for it.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from enum import Enum
from typing import Any, Generic, TypeVar

import strawberry
from aiodataloader import DataLoader

from app.cost.directives import Cost
from app.pagination import Page
from resolvers.batching import batched, one, settle

T = TypeVar("T")


@strawberry.interface(description="An object with a global, opaque, type-checked id.")
class Node:
    # No instance dictionary here or in the node types: one object per row, not two, for
    # the garbage collector to walk while a page of results is being built.
    __slots__ = ()
    id: strawberry.ID


@strawberry.type
class PageInfo:
    __slots__ = ("end_cursor", "has_next_page", "has_previous_page", "start_cursor")
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


def _cursor(root: Edge[Any]) -> str:
    return root.cursor_of(root.row)


@strawberry.type
class Edge(Generic[T]):
    __slots__ = ("cursor_of", "node", "row")
    cursor: str = strawberry.field(resolver=_cursor)
    node: T
    row: strawberry.Private[Any]
    cursor_of: strawberry.Private[Callable[[Any], str]]


async def _pages(connections: Sequence[Connection[Any]]) -> list[Page | Exception]:
    return await settle([c.pages.load(c.key) for c in connections])


async def edges_many(connections: Sequence[Connection[Any]], info: Any) -> list[Any]:
    results: list[Any] = []
    for connection, page in zip(connections, await _pages(connections), strict=True):
        if isinstance(page, Exception):
            results.append(page)
            continue
        to_node, cursor_of = connection.to_node, connection.cursor_of
        try:
            results.append(
                [Edge(node=to_node(row), row=row, cursor_of=cursor_of) for row in page.rows]
            )
        except Exception as error:
            results.append(error)
    return results


async def page_info_many(connections: Sequence[Connection[Any]], info: Any) -> list[Any]:
    results: list[Any] = []
    for connection, page in zip(connections, await _pages(connections), strict=True):
        if isinstance(page, Exception):
            results.append(page)
            continue
        cursor_of, rows = connection.cursor_of, page.rows
        try:
            results.append(
                PageInfo(
                    has_next_page=page.has_next,
                    has_previous_page=page.has_previous,
                    start_cursor=cursor_of(rows[0]) if rows else None,
                    end_cursor=cursor_of(rows[-1]) if rows else None,
                )
            )
        except Exception as error:
            results.append(error)
    return results


async def total_count_many(connections: Sequence[Connection[Any]], info: Any) -> list[Any]:
    return await settle([c.counts.load(c.count_key) for c in connections])


@strawberry.type
class Connection(Generic[T]):
    """A page of a list. Each part is fetched only if the query selects it, so
    ``campaigns { totalCount }`` costs one count and no page, and the reverse."""

    __slots__ = ("count_key", "counts", "cursor_of", "key", "pages", "to_node")
    # The page is pages.load(key) and the total counts.load(count_key): data, not closures,
    # because a page of 50 campaigns makes 100 connections.
    pages: strawberry.Private[DataLoader[Any, Page]]
    key: strawberry.Private[Hashable]
    to_node: strawberry.Private[Callable[[Any], T]]
    cursor_of: strawberry.Private[Callable[[Any], str]]
    counts: strawberry.Private[DataLoader[Any, int]]
    count_key: strawberry.Private[Hashable]

    @strawberry.field(metadata=batched(edges_many))
    async def edges(self, info: strawberry.Info) -> list[Edge[T]]:
        edges: list[Edge[T]] = await one(edges_many, self, info)
        return edges

    @strawberry.field(metadata=batched(page_info_many))
    async def page_info(self, info: strawberry.Info) -> PageInfo:
        page_info: PageInfo = await one(page_info_many, self, info)
        return page_info

    @strawberry.field(
        description="All items matching, across pages; costs one batched count.",
        directives=[Cost(weight=1)],
        metadata=batched(total_count_many),
    )
    async def total_count(self, info: strawberry.Info) -> int:
        count: int = await one(total_count_many, self, info)
        return count


@strawberry.enum
class OrderDirection(Enum):
    ASC = "ASC"
    DESC = "DESC"


def build_connection(
    pages: DataLoader[Any, Page],
    key: Hashable,
    to_node: Callable[[Any], T],
    cursor_of: Callable[[Any], str],
    counts: DataLoader[Any, int],
    count_key: Hashable,
) -> Connection[T]:
    return Connection(
        pages=pages,
        key=key,
        to_node=to_node,
        cursor_of=cursor_of,
        counts=counts,
        count_key=count_key,
    )
