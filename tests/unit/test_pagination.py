"""Cursors round-trip within their ordering and are refused elsewhere; page sizes are capped."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.errors import BadUserInput
from app.pagination import (
    MAX_PAGE_SIZE,
    PageArgs,
    check_first,
    decode_cursor,
    encode_cursor,
    page_from_rows,
)


@given(st.datetimes(timezones=st.just(UTC)), st.uuids())
def test_time_cursors_round_trip(moment: datetime, pk: uuid.UUID) -> None:
    position = decode_cursor(
        encode_cursor("created_at:asc", moment, pk), "created_at:asc", value_is_time=True
    )
    assert (position.value, position.pk) == (moment, pk)


@given(st.text(st.characters(exclude_characters="\x00"), max_size=200), st.uuids())
def test_name_cursors_round_trip_any_text_postgres_can_store(name: str, pk: uuid.UUID) -> None:
    position = decode_cursor(encode_cursor("name:desc", name, pk), "name:desc", value_is_time=False)
    assert (position.value, position.pk) == (name, pk)


def test_a_cursor_from_another_ordering_is_refused() -> None:
    cursor = encode_cursor("name:asc", "x", uuid.uuid4())
    with pytest.raises(BadUserInput, match="another ordering"):
        decode_cursor(cursor, "created_at:asc", value_is_time=True)


def _b64(payload: str) -> str:
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


JSON_GARBAGE = [
    "[]",
    '["created_at:asc", "2026-01-01T00:00:00+00:00"]',
    '["created_at:asc", "2026-01-01T00:00:00+00:00", "not-a-uuid"]',
    '["created_at:asc", "yesterday", "00000000-0000-0000-0000-000000000000"]',
    '["created_at:asc", "2026-01-01T00:00:00", "00000000-0000-0000-0000-000000000000"]',
    '["created_at:asc", 5, "00000000-0000-0000-0000-000000000000"]',
    '{"order": "created_at:asc"}',
    '"created_at:asc"',
    "null",
    "[" * 50,
]


@pytest.mark.parametrize("payload", JSON_GARBAGE)
def test_cursors_that_decode_to_the_wrong_json_are_bad_user_input(payload: str) -> None:
    with pytest.raises(BadUserInput) as refused:
        decode_cursor(_b64(payload), "created_at:asc", value_is_time=True)
    assert refused.value.extensions.get("argument") == "after"


@given(st.one_of(st.text(max_size=1200), st.text(max_size=300).map(_b64)))
def test_garbage_cursors_are_bad_user_input_or_a_valid_position(text: str) -> None:
    """Whatever a client sends: refused as BAD_USER_INPUT on `after`, or (only if it is a
    well-formed cursor of this ordering) a position PostgreSQL can compare. Never another
    exception, never a half-decoded value."""
    try:
        position = decode_cursor(text, "created_at:asc", value_is_time=True)
    except BadUserInput as refused:
        argument = refused.extensions.get("argument")
    else:
        argument = None
    if argument is not None:
        assert argument == "after"
        return
    assert position.order == "created_at:asc"
    assert isinstance(position.value, datetime) and position.value.tzinfo is not None
    assert isinstance(position.pk, uuid.UUID)


@pytest.mark.parametrize("first", [-1, MAX_PAGE_SIZE + 1, 10**9])
def test_first_outside_the_cap_is_refused(first: int) -> None:
    with pytest.raises(BadUserInput):
        check_first(first)


def test_first_defaults_to_20() -> None:
    assert check_first(None) == 20


def test_page_keeps_first_rows_and_knows_more_follow() -> None:
    page = page_from_rows([1, 2, 3], PageArgs(first=2))
    assert page.rows == [1, 2] and page.has_next and not page.has_previous


def test_cursors_postgres_could_not_compare_are_refused() -> None:
    pk = uuid.uuid4()
    with pytest.raises(BadUserInput):
        decode_cursor(encode_cursor("name:asc", "a\x00b", pk), "name:asc", value_is_time=False)
    year_zero_in_utc = "0001-01-01T00:00:00+14:00"
    with pytest.raises(BadUserInput):
        decode_cursor(
            encode_cursor("created_at:asc", year_zero_in_utc, pk),
            "created_at:asc",
            value_is_time=True,
        )
