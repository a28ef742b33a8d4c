"""The runner against graphql-core on a schema made to reach every corner of completion.

The app's schema only returns well-behaved values, so the differential API test rarely
takes the runner's slow paths. This schema does on purpose: lists mixing objects of the
exact class with subclasses and values of another type, exceptions returned and raised at
every depth, nulls in non-null positions inside lists, awaitables in lists, abstract
types, enums and scalars that need coercion, and batch resolvers that fail per object or
for a whole level. Each query runs on a schema with plans and on one without, and the
results must be equal (errors in any order, as in tests/api/differential.py).
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

import pytest
import strawberry
from strawberry.scalars import JSON
from strawberry.schema.config import StrawberryConfig

from app.execution import execution_context_class
from resolvers.batching import batched, one
from resolvers.columns import column


@strawberry.enum
class Mood(Enum):
    HAPPY = "happy"
    GRUMPY = "grumpy"


@strawberry.interface
class Thing:
    name: str


async def _scores_many(items: list[Item], info: Any) -> list[Any]:
    await asyncio.sleep(0)
    return [ValueError(f"no score for {i.name}") if i.n % 4 == 3 else i.n * 1.5 for i in items]


async def _failing_many(items: list[Item], info: Any) -> list[Any]:
    raise RuntimeError("the whole level failed")


@strawberry.type
class Item(Thing):
    n: int
    mood: Mood = Mood.HAPPY

    @strawberry.field
    def label(self) -> str:
        if self.n == 2:
            raise ValueError("no label for 2")
        return f"item {self.n}"

    @strawberry.field
    def ratio(self) -> float | None:
        return float("inf") if self.n == 3 else self.n / 4  # inf is not a GraphQL Float

    @strawberry.field
    def maybe(self) -> str | None:
        return None if self.n % 2 else f"even {self.n}"

    @strawberry.field
    def strict(self) -> str:
        return None if self.n == 5 else "ok"  # type: ignore[return-value]

    @strawberry.field(metadata=batched(_scores_many))
    async def score(self, info: strawberry.Info) -> float | None:
        score: float | None = await one(_scores_many, self, info)
        return score

    @strawberry.field(metadata=batched(_failing_many))
    async def failing(self, info: strawberry.Info) -> int | None:
        value: int | None = await one(_failing_many, self, info)
        return value

    @strawberry.field
    async def later(self) -> int:
        await asyncio.sleep(0)
        if self.n == 4:
            raise ValueError("late failure")
        return self.n * 10

    @strawberry.field
    def children(self) -> list[Item]:
        return [Item(name=f"{self.name}.{k}", n=self.n + k) for k in range(3)]

    @strawberry.field
    def friend(self) -> Item | None:
        kind = SpecialItem if self.n % 2 else Item
        return kind(name=f"friend of {self.name}", n=self.n + 1)

    @strawberry.field
    def strict_children(self) -> list[Item]:
        return [Item(name="a", n=1), None, Item(name="c", n=3)]  # type: ignore[list-item]

    @strawberry.field
    def loose_children(self) -> list[Item | None]:
        return [Item(name="a", n=1), None, ValueError("bad child")]  # type: ignore[list-item]


class SpecialItem(Item):
    """A subclass: accepted as an Item, but not by the runner's exact-class fast path."""


@strawberry.type
class Other(Thing):
    size: int


class Cents(Decimal):
    """A Decimal subclass: a valid Decimal, but not by the runner's exact-class fast path."""


@strawberry.type
class Stored:
    """Backed by a mapping, as the app's row types are: its fields are columns, read and
    completed by the runner in one pass per level (resolvers/columns.py)."""

    row: strawberry.Private[dict[str, Any]]
    word: str = column("word")
    count: int = column("count")
    maybe_count: int | None = column("maybe_count")
    price: Decimal = column("price")
    maybe_price: Decimal | None = column("maybe_price")
    at: datetime = column("at")


STORED: list[dict[str, Any]] = [
    {
        "word": "a",
        "count": 1,
        "maybe_count": None,
        "price": Decimal("1.50"),
        "maybe_price": None,
        "at": datetime(2025, 1, 2, 3, 4, tzinfo=UTC),
    },
    {
        "word": 3,
        "count": 2**40,
        "maybe_count": True,
        "price": Cents("2.25"),
        "maybe_price": 7,
        "at": date(2025, 1, 2),
    },
    {
        "word": None,
        "count": True,
        "maybe_count": 2**31,
        "price": None,
        "maybe_price": "x",
        "at": None,
    },
    {
        "count": "7",
        "maybe_count": -(2**31),
        "price": Decimal("-0.00"),
        "maybe_price": Decimal("1E+2"),
        "at": "2025-01-02",
    },
]


class Bag(dict[str, Any]):
    """A dict subclass: valid JSON, but not by the runner's exact-class fast path."""


@strawberry.type
class Change:
    """JSON values in plain attributes, as an audit entry's changes carry them."""

    value: JSON
    maybe: JSON | None


def change(value: object, maybe: object) -> Change:
    return Change(value=JSON(value), maybe=JSON(maybe))


CHANGES = [
    change({"a": [1, 2.5, "x", None, True, {"b": {}}]}, None),
    change("text", []),
    change(None, 0),  # null in a non-null position
    change(ValueError("no value"), False),  # an error returned as the value
    change(Bag(c=1), -1.5),
]


@strawberry.type
class Query:
    @strawberry.field
    def changes(self) -> list[Change | None]:
        return list(CHANGES)

    @strawberry.field
    def stored(self) -> list[Stored | None]:
        return [Stored(row=row) for row in STORED]

    @strawberry.field
    def items(self) -> list[Item]:
        return [
            Item(name="one", n=1),
            SpecialItem(name="two", n=2, mood=Mood.GRUMPY),
            Item(name="three", n=3),
            Item(name="four", n=4),
        ]

    @strawberry.field
    def mixed(self) -> list[Item | None]:
        return [Item(name="ok", n=0), "not an item", None, SpecialItem(name="sub", n=6)]  # type: ignore[list-item]

    @strawberry.field
    async def awaited(self) -> list[Item]:
        async def make(n: int) -> Item:
            await asyncio.sleep(0)
            return Item(name=f"aw{n}", n=n)

        return [make(n) for n in range(3)]  # type: ignore[misc]

    @strawberry.field
    def things(self) -> list[Thing]:
        return [Item(name="i", n=1), Other(name="o", size=3), SpecialItem(name="s", n=8)]

    @strawberry.field
    def counts(self) -> list[int]:
        return [1, 2**40, 3]  # an Int out of range is an error for the whole non-null item

    @strawberry.field
    def words(self) -> list[str | None]:
        return ["a", 3, None, True]  # type: ignore[list-item]

    @strawberry.field
    def broken(self) -> Item:
        raise ValueError("root failure")

    @strawberry.field
    def nothing(self) -> Item | None:
        return None


QUERIES = [
    "{ items { name n mood label maybe score later ratio } }",
    "{ items { name children { name n maybe children { n label } } } }",
    "{ items { strict } }",
    "{ items { n friend { n label strict } } }",
    "{ items { n strictChildren { name } } }",
    "{ items { n looseChildren { name } } }",
    "{ items { n failing } }",
    "{ mixed { name n } }",
    "{ awaited { name later } }",
    "{ things { __typename name ... on Item { n mood } ... on Other { size } } }",
    "{ counts }",
    "{ words }",
    "{ broken { name } nothing { name } }",
    "{ stored { word count maybeCount price maybePrice at } }",
    "{ stored { maybeCount maybePrice } }",
    "{ changes { value maybe } }",
    "{ changes { maybe } }",
    "{ items { name } broken { name } }",
    "{ a: items { n } b: items { n label } }",
    "query($skip: Boolean!) { items { n label @skip(if: $skip) maybe @include(if: $skip) } }",
    "{ items { ...F } } fragment F on Item { n children { ...G } } fragment G on Item { name }",
]


def _schema(fast: bool) -> strawberry.Schema:
    return strawberry.Schema(
        query=Query,
        types=[Other],
        config=StrawberryConfig(),
        execution_context_class=execution_context_class(fast),
    )


def _normal(result: Any) -> dict[str, Any]:
    errors = sorted(
        (json.dumps({"message": e.message, "path": e.path}, sort_keys=True))
        for e in result.errors or []
    )
    return {"data": json.dumps(result.data), "errors": errors}


@pytest.mark.parametrize("query", QUERIES)
async def test_planned_execution_matches_graphql_core(query: str) -> None:
    fast, stock = _schema(True), _schema(False)
    for variables in ({"skip": True}, {"skip": False}):
        planned = await fast.execute(query, variable_values=variables)
        expected = await stock.execute(query, variable_values=variables)
        assert _normal(planned) == _normal(expected), (query, planned, expected)


async def test_the_corners_are_reached() -> None:
    """The schema does produce the errors the comparisons are about."""
    schema = _schema(True)
    messages = ""
    for query in ("{ items { children { strict } } }", "{ mixed { n } }", "{ counts }"):
        result = await schema.execute(query)
        messages += " ".join(e.message for e in result.errors or [])
    assert "Cannot return null for non-nullable field Item.strict" in messages
    assert "Expected value of type 'Item' but got: 'not an item'" in messages
    assert "Int cannot represent non 32-bit signed integer value" in messages
