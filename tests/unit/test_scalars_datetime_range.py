"""The DateTime scalar takes instants from 1900 up to 9000 in UTC, and says so.

At the edges Python and PostgreSQL disagree (asyncpg stores ``datetime.min`` and
``datetime.max`` as -infinity and infinity and reads them back without an offset), so the
scalar refuses what lies outside a range with centuries of margin on both sides.
"""

from __future__ import annotations

import datetime as dt

import pytest
from strawberry.exceptions import StrawberryInputCoercionError

from app.scalars import DateTime, parse_datetime

REFUSED = [
    "0001-01-01T00:00:00Z",  # datetime.min: stored as -infinity
    "0001-01-01T00:00:00.000001Z",
    "9999-12-31T23:59:59.999999Z",  # datetime.max: stored as infinity
    "1899-12-31T23:59:59.999999Z",
    "1900-01-01T00:59:59+01:00",  # 1899 in UTC
    "9000-01-01T00:00:00Z",
    "8999-12-31T23:00:00-14:00",  # 9000 in UTC
]
ACCEPTED = {
    "1900-01-01T00:00:00Z": dt.datetime(1900, 1, 1, tzinfo=dt.UTC),
    "1900-01-01T01:00:00+01:00": dt.datetime(1900, 1, 1, tzinfo=dt.UTC),
    "8999-12-31T23:59:59.999999Z": dt.datetime(8999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC),
    "2026-01-31T09:00:00+05:30": dt.datetime(2026, 1, 31, 3, 30, tzinfo=dt.UTC),
}


def test_datetime_input_is_taken_from_1900_up_to_but_not_including_9000_in_utc() -> None:
    for value in REFUSED:
        with pytest.raises(StrawberryInputCoercionError) as refused:
            parse_datetime(value)
        assert "from 1900-01-01T00:00:00Z up to, not including, 9000-01-01T00:00:00Z" in str(
            refused.value
        ), value
        assert value in str(refused.value)
    for value, moment in ACCEPTED.items():
        assert parse_datetime(value) == moment, value
    # Left to the field's own check (app/validation.check_moment), whose error names the
    # field, which a scalar's cannot: no offset, or no year at all in UTC.
    assert parse_datetime("0001-01-01T00:00:00").tzinfo is None
    assert parse_datetime("0001-01-01T00:00:00+14:00").year == 1  # year 0 in UTC
    assert parse_datetime("9999-12-31T23:59:59-14:00").year == 9999  # year 10000 in UTC


def test_the_schema_description_states_the_range() -> None:
    assert DateTime.description is not None
    assert "from 1900-01-01T00:00:00Z up to, not including, 9000-01-01T00:00:00Z" in (
        DateTime.description
    )
