"""Turning connection arguments into loader keys, checking them on the way."""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum
from typing import Any

from app.pagination import PageArgs, check_first, decode_cursor, encode_cursor
from app.validation import clean_search
from loaders.postgres.membership import EDGE_ORDER
from loaders.postgres.pages import ListFilter, ListQuery, Ordering
from resolvers.relay import OrderDirection

ORDER_COLUMNS = {"CREATED_AT": "created_at", "UPDATED_AT": "updated_at", "NAME": "name"}


def chosen(values: Sequence[Enum] | None) -> tuple[str, ...] | None:
    """A list filter's values in one order (equal filters share a loader key), keeping null
    apart from []: null is no filter, [] the empty IN-list that matches nothing."""
    return None if values is None else tuple(sorted({v.value for v in values}))


def list_query(
    first: int | None,
    after: str | None,
    statuses: Sequence[Enum] | None,
    search: str | None,
    order_field: Enum,
    direction: OrderDirection,
) -> ListQuery:
    ordering = Ordering(
        column=ORDER_COLUMNS[order_field.value], descending=direction is OrderDirection.DESC
    )
    position = None
    if after is not None:
        position = decode_cursor(after, ordering.name, value_is_time=ordering.column != "name")
    return ListQuery(
        filter=ListFilter(
            statuses=chosen(statuses),
            search=clean_search(search),
        ),
        ordering=ordering,
        page=PageArgs(first=check_first(first), after=position),
    )


def list_cursor(query: ListQuery, row: Any) -> str:
    return encode_cursor(query.ordering.name, row[query.ordering.column], row["id"])


def time_args(first: int | None, after: str | None, order: str) -> PageArgs:
    """Page arguments of a nested connection ordered by a time column, then id."""
    position = decode_cursor(after, order, value_is_time=True) if after is not None else None
    return PageArgs(first=check_first(first), after=position)


def edge_args(first: int | None, after: str | None) -> PageArgs:
    return time_args(first, after, EDGE_ORDER)


def edge_cursor(row: Any) -> str:
    return encode_cursor(EDGE_ORDER, row["edge_at"], row["id"])
