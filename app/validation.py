"""Input rules shared by every mutation: bounded lengths, no control characters, sane money.

Checked before any write, so bad input is a BAD_USER_INPUT error that names its field and
nothing stored changes; the database's CHECK constraints are the second line, not the first.
"""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime
from decimal import Decimal, DecimalException, InvalidOperation

from app.errors import BadUserInput

NAME_MAX = 200
TEXT_MAX = 4000
BUDGET_MAX = Decimal("999999999999.99")


def has_control_chars(value: str, *, allow_newlines: bool) -> bool:
    allowed = {"\n", "\t", "\r"} if allow_newlines else set()
    return any(unicodedata.category(ch) == "Cc" and ch not in allowed for ch in value)


# The explicit bidirectional embeddings, overrides (U+202A..U+202E) and isolates
# (U+2066..U+2069): each reorders how the text after it is displayed, so a name holding one can
# read as other text than it is ("Trojan Source" spoofing). Right-to-left letters need none of
# them, and the implicit marks (LRM, RLM, ALM) only place neutral characters, so those stay.
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


# Letters and symbols that render as nothing: the Hangul fillers and the blank braille cell.
BLANK_CHARACTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")
# Format characters (zero-width spaces and joiners, the byte-order mark, ...) and marks, which
# only decorate a neighbour (combining accents, variation selectors, Khmer's inherent vowels).
UNSEEN_CATEGORIES = frozenset({"Cf", "Mn", "Me"})


def _is_invisible(value: str) -> bool:
    """Whether nothing is left to see once whitespace, format characters, marks with nothing
    to mark and blank characters are removed: such a name shows as blank, or as its
    neighbour's text, wherever it is listed."""
    return all(
        ch.isspace() or ch in BLANK_CHARACTERS or unicodedata.category(ch) in UNSEEN_CATEGORIES
        for ch in value
    )


def clean_name(value: str, field: str, max_length: int = NAME_MAX) -> str:
    """A name as shown to people (agents, campaigns, tenants): trimmed, bounded, and made of
    text that displays as what it is. Format characters stay allowed inside a name, since
    emoji sequences and some scripts need joiners (U+200D joins woman and laptop into one
    technologist emoji), but not as all of it."""
    cleaned = value.strip()
    if not cleaned:
        raise BadUserInput(f"'{field}' must not be empty", field=field)
    if len(cleaned) > max_length:
        raise BadUserInput(f"'{field}' must be at most {max_length} characters", field=field)
    if has_control_chars(cleaned, allow_newlines=False):
        raise BadUserInput(f"'{field}' must not contain control characters", field=field)
    if any(ch in BIDI_CONTROLS for ch in cleaned):
        raise BadUserInput(
            f"'{field}' must not contain bidirectional override or isolate characters",
            field=field,
        )
    if _is_invisible(cleaned):
        raise BadUserInput(f"'{field}' must contain a visible character", field=field)
    return cleaned


def clean_text(value: str, field: str, max_length: int = TEXT_MAX) -> str:
    cleaned = value.strip()
    if len(cleaned) > max_length:
        raise BadUserInput(f"'{field}' must be at most {max_length} characters", field=field)
    if has_control_chars(cleaned, allow_newlines=True):
        raise BadUserInput(f"'{field}' must not contain control characters", field=field)
    return cleaned


def clean_search(value: str | None) -> str | None:
    if value is None:
        return None
    cleaned = value.strip()
    if len(cleaned) > NAME_MAX:
        raise BadUserInput(f"'search' must be at most {NAME_MAX} characters", field="search")
    if has_control_chars(cleaned, allow_newlines=False):
        raise BadUserInput("'search' must not contain control characters", field="search")
    return cleaned or None


SEARCH_TEXT_MAX = 1000


def clean_search_text(value: str) -> str:
    """A semantic query: non-empty, bounded (the model reads 256 word pieces at most)."""
    cleaned = value.strip()
    if not cleaned:
        raise BadUserInput("'query' must not be empty", argument="query")
    if len(cleaned) > SEARCH_TEXT_MAX:
        raise BadUserInput(
            f"'query' must be at most {SEARCH_TEXT_MAX} characters", argument="query"
        )
    if has_control_chars(cleaned, allow_newlines=True):
        raise BadUserInput("'query' must not contain control characters", argument="query")
    return cleaned


# What the DateTime scalar takes (app/scalars.py says why).
DATETIME_RANGE = "from 1900-01-01T00:00:00Z up to, not including, 9000-01-01T00:00:00Z"


def storable_moment(value: datetime) -> bool:
    """Whether a time has a zone and still lies within Python's range once moved to UTC,
    where the database driver converts it (year 1 at +14:00 is year 0 in UTC)."""
    if value.tzinfo is None:
        return False
    try:
        value.astimezone(UTC)
    except OverflowError:
        return False
    return True


def clean_budget(value: Decimal) -> Decimal:
    try:
        if not value.is_finite():
            raise InvalidOperation
        if value < 0 or value > BUDGET_MAX:
            raise BadUserInput(f"'budget' must be between 0 and {BUDGET_MAX}", field="budget")
        if value != value.quantize(Decimal("0.01")):
            raise BadUserInput("'budget' may have at most 2 decimal places", field="budget")
    except DecimalException as exc:
        raise BadUserInput("'budget' must be a finite decimal number", field="budget") from exc
    return value.quantize(Decimal("0.01"))


def check_moment(name: str, value: datetime, **where: str) -> None:
    """A time given as input: with a zone, and within what Python and PostgreSQL hold once
    moved to UTC. ``where`` names the input for the error (``field=`` or ``argument=``)."""
    if value.tzinfo is None:
        raise BadUserInput(f"'{name}' must carry a time zone offset", **where)
    if not storable_moment(value):
        raise BadUserInput(f"'{name}' is out of range ({DATETIME_RANGE})", **where)


def check_dates(starts_at: datetime | None, ends_at: datetime | None) -> None:
    for name, moment in (("startsAt", starts_at), ("endsAt", ends_at)):
        if moment is not None:
            check_moment(name, moment, field=name)
    if starts_at is not None and ends_at is not None and ends_at <= starts_at:
        raise BadUserInput("'endsAt' must be after 'startsAt'", field="endsAt")


IDEMPOTENCY_KEY_MAX = 128


def clean_idempotency_key(value: str) -> str:
    """A client's idempotency key: what it sends again on a retry, so it is taken as sent."""
    if (
        not value
        or len(value) > IDEMPOTENCY_KEY_MAX
        or not value.isprintable()
        or value != value.strip()
    ):
        raise BadUserInput(
            f"'idempotencyKey' must be 1 to {IDEMPOTENCY_KEY_MAX} printable characters without "
            "surrounding spaces",
            field="idempotencyKey",
        )
    return value


def check_window(since: datetime | None, until: datetime | None, argument: str) -> None:
    """A filter's ``from`` and ``to``: each with a zone, and in order when both are given."""
    for name, moment in (("from", since), ("to", until)):
        if moment is not None:
            check_moment(name, moment, argument=argument)
    if since is not None and until is not None and until <= since:
        raise BadUserInput("'to' must be after 'from'", argument=argument)
