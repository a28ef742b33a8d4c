"""Scalars whose input errors speak to the client, not in Python.

Strawberry's DateTime parses with dateutil and appends dateutil's own error to the
message ("invalid literal for int() with base 10: 'yesterday'"). Ours says what a valid
value looks like. Strawberry's Decimal hands any text to Python's ``Decimal``, which reads
far more than a decimal number: "1_000" as a thousand, " 12 " as twelve, and digits of
every script ("٣", Arabic-Indic, as 3; fullwidth digits as their values). Money is the
only thing Chimera keeps as a Decimal, so ours takes a plain numeral in ASCII digits and
nothing else. Output is unchanged: the same serializers (``isoformat``, ``str``), which
the planned executor recognises (app/execution/leaves.py).

Our DateTime also refuses instants outside the years 1900 to 8999 in UTC, because Python
and PostgreSQL disagree at the edges of time: asyncpg writes ``datetime.min`` and
``datetime.max`` as PostgreSQL's -infinity and infinity and reads those back as naive
datetimes (shown without an offset, and not comparable with the aware ones every other
row holds), and a moment near year 1 or 9999 overflows Python once an offset or a metrics
bucket moves it. Centuries of margin on both sides keep all of that out of reach; no
campaign, task or filter needs more.
"""

from __future__ import annotations

import datetime as dt
import decimal
import re
from typing import Any

import dateutil.parser
from graphql import FloatValueNode, IntValueNode, StringValueNode, ValueNode, print_ast
from strawberry.exceptions import StrawberryInputCoercionError
from strawberry.schema.types.base_scalars import isoformat
from strawberry.types.scalar import ScalarDefinition

from app.validation import DATETIME_RANGE, storable_moment

DATETIME_EXAMPLE = "2026-01-31T09:00:00Z"
# The instants a DateTime input may name: from EARLIEST, up to but not including LATEST.
EARLIEST = dt.datetime(1900, 1, 1, tzinfo=dt.UTC)
LATEST = dt.datetime(9000, 1, 1, tzinfo=dt.UTC)


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
    # What storable_moment refuses (no offset, or no year at all once moved to UTC: year 1
    # at +14:00) is left to the input's own check (app/validation.py), whose error names
    # the field or argument; a scalar's error cannot, as it never learns where it stands.
    if storable_moment(parsed) and not EARLIEST <= parsed < LATEST:
        raise StrawberryInputCoercionError(
            f'Value cannot represent a DateTime: "{value}". Expected a moment {DATETIME_RANGE}.'
        )
    return parsed


DateTime = ScalarDefinition(
    name="DateTime",
    description=(
        "A moment: ISO 8601 date and time with a UTC offset, for example "
        f'"{DATETIME_EXAMPLE}". Input must carry an offset and lie {DATETIME_RANGE}.'
    ),
    specified_by_url=None,
    serialize=isoformat,
    parse_value=parse_datetime,
    parse_literal=None,
    origin=dt.datetime,
)

# An optional sign, digits with an optional fraction (or a fraction alone), an optional
# exponent: what JSON and GraphQL call a number, with a leading zero or a bare "5." allowed.
_NUMERAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
DECIMAL_EXAMPLE = "12.50"


def parse_decimal(value: Any) -> decimal.Decimal:
    """A string holding a decimal numeral, or a JSON number (an integer, or a float by its
    shortest text: 0.1 is "0.1", not the binary fraction nearest it)."""
    text: str | None = None
    if isinstance(value, str):
        text = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        try:
            text = repr(value)
        except ValueError:  # an integer over Python's 4,300 digits for a conversion to text
            text = None
    if text is None or _NUMERAL.fullmatch(text) is None:
        raise StrawberryInputCoercionError(
            f'Value cannot represent a Decimal: "{_shown(value)}". Expected a finite decimal '
            f'number in ASCII digits, as a string, for example "{DECIMAL_EXAMPLE}".'
        )
    return decimal.Decimal(text)


def parse_decimal_literal(
    node: ValueNode, _variables: dict[str, Any] | None = None
) -> decimal.Decimal:
    """A literal in the document, read from its text as written: ``amount: 0.1`` and
    ``1.23456789012345678901`` keep every digit, which the float graphql-core would make of
    them first does not."""
    if isinstance(node, IntValueNode | FloatValueNode | StringValueNode):
        return parse_decimal(node.value)
    raise StrawberryInputCoercionError(
        f"Value cannot represent a Decimal: {print_ast(node)}. Expected a finite decimal "
        f'number, for example "{DECIMAL_EXAMPLE}".'
    )


def _shown(value: Any, limit: int = 40) -> str:
    """``value`` as the error quotes it: cut short, as a megabyte of input need not come
    back in the answer."""
    try:
        text = str(value)
    except ValueError:  # an integer over Python's 4,300 digits
        return "an integer too long to show"
    return text if len(text) <= limit else text[:limit] + "…"


Decimal = ScalarDefinition(
    name="Decimal",
    description=(
        "A finite decimal number, exact: sent and returned as a string of ASCII digits with "
        'an optional sign, fraction and exponent ("12.50", "-3", "1e3").'
    ),
    specified_by_url=None,
    serialize=str,
    parse_value=parse_decimal,
    parse_literal=parse_decimal_literal,
    origin=decimal.Decimal,
)

SCALAR_OVERRIDES: dict[object, Any] = {dt.datetime: DateTime, decimal.Decimal: Decimal}
