"""Relay building blocks: the Node interface and cursor connections with a lazy totalCount."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from enum import Enum
from typing import Any, Generic, TypeVar

import strawberry

from app.pagination import Page

T = TypeVar("T")


@strawberry.interface(description="An object with a global, opaque, type-checked id.")
class Node:
    id: strawberry.ID


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type
class Edge(Generic[T]):
    cursor: str
    node: T


@strawberry.type
class Connection(Generic[T]):
    """A page of a list. Each part is fetched only if the query selects it, so
    ``campaigns { totalCount }`` costs one count and no page, and the reverse."""

    fetch_page: strawberry.Private[Callable[[], Awaitable[Page]]]
    to_node: strawberry.Private[Callable[[Any], T]]
    cursor_of: strawberry.Private[Callable[[Any], str]]
    count: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field
    async def edges(self) -> list[Edge[T]]:
        page = await self.fetch_page()
        return [Edge(cursor=self.cursor_of(row), node=self.to_node(row)) for row in page.rows]

    @strawberry.field
    async def page_info(self) -> PageInfo:
        page = await self.fetch_page()
        return PageInfo(
            has_next_page=page.has_next,
            has_previous_page=page.has_previous,
            start_cursor=self.cursor_of(page.rows[0]) if page.rows else None,
            end_cursor=self.cursor_of(page.rows[-1]) if page.rows else None,
        )

    @strawberry.field(description="All items matching, across pages; costs one batched count.")
    async def total_count(self) -> int:
        return await self.count()


@strawberry.enum
class OrderDirection(Enum):
    ASC = "ASC"
    DESC = "DESC"


def build_connection(
    fetch_page: Callable[[], Awaitable[Page]],
    to_node: Callable[[Any], T],
    cursor_of: Callable[[Any], str],
    count: Callable[[], Awaitable[int]],
) -> Connection[T]:
    return Connection(fetch_page=fetch_page, to_node=to_node, cursor_of=cursor_of, count=count)
