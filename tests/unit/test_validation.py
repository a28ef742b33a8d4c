"""Input rules: names, free text, money and dates."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from app.errors import BadUserInput
from app.validation import check_dates, clean_budget, clean_name, clean_text


def test_names_are_trimmed_and_bounded() -> None:
    assert clean_name("  Ada  ", "name") == "Ada"
    for bad in ("", "   ", "x" * 201, "tab\tname", "bell\x07"):
        with pytest.raises(BadUserInput):
            clean_name(bad, "name")


def test_text_allows_newlines_but_not_other_control_characters() -> None:
    assert clean_text("line one\nline two", "goal") == "line one\nline two"
    with pytest.raises(BadUserInput):
        clean_text("nul\x00", "goal")
    with pytest.raises(BadUserInput):
        clean_text("x" * 4001, "goal")


@pytest.mark.parametrize("value", ["-1", "1.001", "NaN", "Infinity", "1e13"])
def test_bad_budgets_are_refused(value: str) -> None:
    with pytest.raises(BadUserInput):
        clean_budget(Decimal(value))


def test_budget_is_normalised_to_cents() -> None:
    assert str(clean_budget(Decimal("10"))) == "10.00"


def test_dates_need_a_zone_and_an_order() -> None:
    start = datetime(2027, 1, 1, tzinfo=UTC)
    check_dates(start, None)
    with pytest.raises(BadUserInput):
        check_dates(start, start)
    with pytest.raises(BadUserInput):
        check_dates(datetime(2027, 1, 1), None)
