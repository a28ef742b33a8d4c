"""Scalars whose input errors speak to the client, not in Python.

Strawberry's DateTime parses with dateutil and appends dateutil's own error to the
message ("invalid literal for int() with base 10: 'yesterday'"). Ours says what a valid
value looks like. Output is unchanged: the same ``isoformat`` serializer, which the
planned executor recognises (app/execution/leaves.py).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import dateutil.parser
from strawberry.exceptions import StrawberryInputCoercionError
from strawberry.schema.types.base_scalars import isoformat
from strawberry.types.scalar import ScalarDefinition

DATETIME_EXAMPLE = "2026-01-31T09:00:00Z"


def parse_datetime(value: Any) -> dt.datetime:
    if not isinstance(value, str):
        raise StrawberryInputCoercionError(
            f'Value cannot represent a DateTime: "{value}". Expected a string.'
        )
    try:
        parsed: dt.datetime = dateutil.parser.isoparse(value)
    except (ValueError, OverflowError):
        raise StrawberryInputCoercionError(
            f'Value cannot represent a DateTime: "{value}". Expected an ISO 8601 date and '
            f'time, for example "{DATETIME_EXAMPLE}".'
        ) from None
    return parsed


DateTime = ScalarDefinition(
    name="DateTime",
    description="Date with time (isoformat)",
    specified_by_url=None,
    serialize=isoformat,
    parse_value=parse_datetime,
    parse_literal=None,
    origin=dt.datetime,
)

SCALAR_OVERRIDES: dict[object, Any] = {dt.datetime: DateTime}
