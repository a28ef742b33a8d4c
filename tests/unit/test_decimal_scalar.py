"""The Decimal scalar takes a decimal numeral in ASCII digits, as a string or a JSON
number, and nothing else that Python's Decimal would read."""

from __future__ import annotations

import decimal

import pytest
from graphql import parse_value
from hypothesis import given
from hypothesis import strategies as st
from strawberry.exceptions import StrawberryInputCoercionError

from app.scalars import parse_decimal, parse_decimal_literal


@given(st.decimals(allow_nan=False, allow_infinity=False))
def test_every_finite_decimal_reads_back_from_its_own_output(value: decimal.Decimal) -> None:
    assert parse_decimal(str(value)) == value


@given(st.integers(min_value=-(10**30), max_value=10**30))
def test_a_json_integer_is_read_exactly(value: int) -> None:
    assert parse_decimal(value) == decimal.Decimal(value)


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_a_json_float_is_read_as_its_shortest_text(value: float) -> None:
    assert parse_decimal(value) == decimal.Decimal(repr(value))


@pytest.mark.parametrize(
    "value",
    [
        "1_000",
        " 12",
        "12\n",
        "٣",
        "\uff11\uff12",  # FULLWIDTH DIGITS ONE, TWO
        "\U0001d7d9",  # MATHEMATICAL DOUBLE-STRUCK DIGIT ONE
        "NaN",
        "-Infinity",
        "inf",
        "sNaN",
        "",
        ".",
        "e3",
        "1e",
        "0x10",
        "1,5",
        True,
        None,
        [1],
        {"amount": 1},
        float("nan"),
        float("inf"),
        10**5000,  # no text for it: over Python's 4,300 digits
    ],
    ids=lambda value: "int of 5001 digits" if value == 10**5000 else ascii(value),
)
def test_anything_else_is_a_coercion_error_that_shows_a_valid_value(value: object) -> None:
    with pytest.raises(StrawberryInputCoercionError, match=r'for example "12\.50"'):
        parse_decimal(value)


@given(st.text(alphabet=st.characters(categories=["Nd"]), min_size=1))
def test_digits_of_other_scripts_are_refused_unless_all_ascii(text: str) -> None:
    if text.isascii():
        assert parse_decimal(text) == decimal.Decimal(text)
    else:
        with pytest.raises(StrawberryInputCoercionError):
            parse_decimal(text)


@pytest.mark.parametrize(
    ("literal", "read"),
    [
        ("0.1", "0.1"),
        ("1.0000000000000001", "1.0000000000000001"),  # 1.0 as a float
        ("123456789012345678901234567890", "123456789012345678901234567890"),
        ('"12.50"', "12.50"),
        ("1e3", "1E+3"),
    ],
)
def test_a_literal_in_the_document_is_read_from_its_text_not_through_a_float(
    literal: str, read: str
) -> None:
    assert parse_decimal_literal(parse_value(literal)) == decimal.Decimal(read)
    assert str(parse_decimal_literal(parse_value(literal))) == read


@pytest.mark.parametrize("literal", ["true", "null", "[1]", "{amount: 1}", "SPEND", '"1_000"'])
def test_a_literal_that_is_not_a_number_is_refused(literal: str) -> None:
    with pytest.raises(StrawberryInputCoercionError):
        parse_decimal_literal(parse_value(literal))
