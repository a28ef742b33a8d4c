"""Money: ISO 4217 currencies and amounts exact to their minor units.

Amounts are ``Decimal`` from the GraphQL input to the ``NUMERIC`` column and back; nothing on
the way is a float. A currency is a code CLDR knows (Babel's copy of the ISO 4217 list, kept
current by its releases, rather than a table of our own) whose minor units fit the two
decimals ``campaign.budget`` and ``campaign.spent`` are stored with: USD and EUR (2), JPY
and KRW (0) are accepted; BHD, KWD and the other three-decimal currencies are refused with
that reason, as are the codes ISO reserves for tests and for "no currency".
"""

from __future__ import annotations

from decimal import Decimal, DecimalException, InvalidOperation
from functools import cache

from babel.numbers import get_currency_precision, list_currencies

from app.errors import BadUserInput

STORED_DECIMALS = 2
# The largest amount NUMERIC(14, 2) holds, and so the largest budget, spend or refund.
AMOUNT_MAX = Decimal("999999999999.99")
DEFAULT_CURRENCY = "USD"
# ISO 4217's codes for testing and for transactions without a currency.
NOT_MONEY = frozenset({"XTS", "XXX"})


@cache
def _known() -> frozenset[str]:
    return frozenset(list_currencies())


def minor_units(currency: str) -> int:
    """Decimal places of the currency's minor unit (2 for USD, 0 for JPY)."""
    return int(get_currency_precision(currency))


def clean_currency(value: str, field: str = "currency") -> str:
    if len(value) != 3 or not value.isascii() or not value.isalpha() or not value.isupper():
        raise BadUserInput(
            f"'{field}' must be an ISO 4217 code of three capital letters, like USD", field=field
        )
    if value not in _known() or value in NOT_MONEY:
        raise BadUserInput(f"'{field}': {value} is not an ISO 4217 currency", field=field)
    if minor_units(value) > STORED_DECIMALS:
        raise BadUserInput(
            f"'{field}': {value} has {minor_units(value)} decimal places; amounts are kept "
            f"with at most {STORED_DECIMALS}",
            field=field,
        )
    return value


def clean_amount(value: Decimal, currency: str, field: str = "amount") -> Decimal:
    """A finite amount within the stored range, with no more decimals than the currency has,
    quantized to them (so "5" and "5.00" are one amount)."""
    places = minor_units(currency)
    unit = Decimal(1).scaleb(-places)
    try:
        if not value.is_finite():
            raise InvalidOperation
        # copy_abs, not abs(): abs() rounds to the context, and overflows on "1e999999999".
        if value.copy_abs() > AMOUNT_MAX:
            raise BadUserInput(f"'{field}' must be at most {AMOUNT_MAX} in size", field=field)
        if value != value.quantize(unit):
            raise BadUserInput(
                f"'{field}' may have at most {places} decimal places in {currency}", field=field
            )
    except DecimalException as exc:
        raise BadUserInput(f"'{field}' must be a finite decimal number", field=field) from exc
    return value.quantize(unit)
