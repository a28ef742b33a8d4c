"""Cursor pagination rules shared by every connection.

Pages are keyset pages: a cursor holds the sort value and the id of the last row seen, so a
page costs one indexed range scan however deep it is, and rows inserted meanwhile never shift
what the next page returns. A cursor also names the ordering it belongs to; replaying it under
another ordering is an error, not a silently wrong page.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple
from uuid import UUID

from app.errors import BadUserInput
from app.validation import storable_moment

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
MAX_CURSOR_LENGTH = 1000


@dataclass(frozen=True)
class Position:
    """Where a page starts: strictly after (value, id) in the ordering ``order``."""

    order: str
    value: datetime | str
    pk: UUID


class PageArgs(NamedTuple):
    """A page request. A tuple: it is half of a loader key for every parent of a page, and a
    tuple hashes in C."""

    first: int
    after: Position | None = None


@dataclass
class Page:
    """One page of rows, fetched with one row to spare to learn whether more follow."""

    rows: list[Any]
    has_next: bool
    has_previous: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def check_first(first: int | None) -> int:
    if first is None:
        return DEFAULT_PAGE_SIZE
    if first < 0 or first > MAX_PAGE_SIZE:
        raise BadUserInput(
            f"'first' must be between 0 and {MAX_PAGE_SIZE}, got {first}", argument="first"
        )
    return first


def encode_cursor(order: str, value: datetime | str, pk: UUID) -> str:
    raw = value.isoformat() if isinstance(value, datetime) else value
    payload = json.dumps([order, raw, str(pk)], separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, order: str, *, value_is_time: bool) -> Position:
    """Parse a cursor made by :func:`encode_cursor` for ``order``, or raise BAD_USER_INPUT."""
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise BadUserInput("Invalid cursor", argument="after")
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        if not (
            isinstance(data, list) and len(data) == 3 and all(isinstance(x, str) for x in data)
        ):
            raise ValueError("wrong shape")
        cursor_order, raw, pk = data
    except (binascii.Error, UnicodeError, ValueError, TypeError) as exc:
        raise BadUserInput("Invalid cursor", argument="after") from exc
    if cursor_order != order:
        raise BadUserInput(
            "This cursor belongs to another ordering; request the first page again",
            argument="after",
        )
    try:
        value: datetime | str = datetime.fromisoformat(raw) if value_is_time else raw
        if isinstance(value, datetime) and not storable_moment(value):
            raise ValueError("naive or out-of-range time")
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("NUL in a text value")
        position = Position(order=cursor_order, value=value, pk=UUID(pk))
    except ValueError as exc:
        raise BadUserInput("Invalid cursor", argument="after") from exc
    return position


def page_from_rows(rows: list[Any], args: PageArgs) -> Page:
    return Page(
        rows=rows[: args.first],
        has_next=len(rows) > args.first,
        has_previous=args.after is not None,
    )
