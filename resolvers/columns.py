"""Node types backed by their database row: fields declared as columns of it.

An object read from PostgreSQL wraps its row (an asyncpg record from a loader, or a
SQLAlchemy row's mapping from a command) instead of copying every column into attributes:
building one cost a dataclass ``__init__`` with a dozen arguments, an id encoding and an
enum conversion, whether the query asked for those fields or not. A column field says
which column it is and how its value is converted (``column("status", CampaignStatus)``).
Stock execution calls its resolver per object; the planned executor
(app/execution/runner.py) reads the column for a whole level at once, and turns a
status straight from the stored text into its GraphQL name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import strawberry

from app.stores.postgres.reads import Record, Row

COLUMN = "chimera.column"

__all__ = ["COLUMN", "Row", "column", "row_of"]


def column(
    name: str,
    convert: Callable[[Any], Any] | None = None,
    *,
    description: str | None = None,
    directives: Sequence[object] = (),
) -> Any:
    """A field whose value is ``convert(self.row[name])`` (or the column's value as is);
    ``directives`` are its schema directives (app/cost/directives.py), as on any field."""
    if convert is None:

        def resolve(root: Any) -> Any:
            return root.row[name]

    else:
        conversion = convert

        def resolve(root: Any) -> Any:
            return conversion(root.row[name])

    return strawberry.field(
        resolver=resolve,
        description=description,
        directives=directives,
        metadata={COLUMN: (name, convert)},
    )


def row_of(row: Any) -> Row:
    """What a row-backed object keeps: a SQLAlchemy row's mapping, anything else as is."""
    if isinstance(row, Record):
        return row
    return getattr(row, "_mapping", row)
