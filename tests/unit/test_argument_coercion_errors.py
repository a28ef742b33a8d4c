"""Arguments that do not coerce are BAD_USER_INPUT, on every way a field is executed.

A nullable variable may stand for a non-null input that has a default; sent as ``null`` it
is only refused when the field's arguments are coerced, by graphql-core, with a GraphQLError
that carries no code (and was masked as INTERNAL_SERVER_ERROR). The runner computes
arguments for root fields (graphql-core's resolve function per object), for direct
resolvers and for batch resolvers, and stock execution in ``execute_field``: each must
mark the error, with graphql-core's message, location and path, and the two executors must
agree. A resolver's own GraphQLError is not the client's input, and stays as it was.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import strawberry
from graphql import GraphQLError
from strawberry.extensions import FieldExtension

from app.execution import execution_context_class
from app.execution.plan import Strategy
from app.execution.runner import Run
from resolvers.batching import batched, one


@strawberry.input
class Page:
    size: int = 10  # Int! = 10: a nullable variable may stand for it


def _sized_many(boxes: list[Box], info: Any, page: Page) -> list[int]:
    return [page.size * box.n for box in boxes]


class PassThrough(FieldExtension):
    """A field extension keeps a field off the runner's own strategies (graphql-core's
    resolve function is called per object, as for root fields)."""

    def resolve(
        self, next_: Callable[..., Any], source: Any, info: strawberry.Info, **kwargs: Any
    ) -> Any:
        return next_(source, info, **kwargs)


@strawberry.type
class Box:
    n: int

    @strawberry.field
    def direct(self, page: Page) -> int | None:
        return page.size * self.n

    @strawberry.field(metadata=batched(_sized_many))
    async def batch(self, info: strawberry.Info, page: Page) -> int | None:
        value: int = await one(_sized_many, self, info, page=page)
        return value

    @strawberry.field(extensions=[PassThrough()])
    def stock(self, page: Page) -> int | None:
        return page.size * self.n

    @strawberry.field
    def limit(self, size: int = 10) -> int | None:
        return size * self.n

    @strawberry.field
    def refuses(self) -> int | None:
        raise GraphQLError("a resolver's own refusal")


@strawberry.type
class Query:
    @strawberry.field
    def boxes(self) -> list[Box]:
        return [Box(n=1), Box(n=2)]

    @strawberry.field
    def root(self, page: Page) -> int | None:
        return page.size


def _schema(fast: bool) -> strawberry.Schema:
    return strawberry.Schema(query=Query, execution_context_class=execution_context_class(fast))


FIELDS = {
    "root field": "query($s: Int) { root(page: {size: $s}) }",
    "direct resolver": "query($s: Int) { boxes { n refuses x: direct(page: {size: $s}) } }",
    "batch resolver": "query($s: Int) { boxes { n refuses x: batch(page: {size: $s}) } }",
    "stock resolve": "query($s: Int) { boxes { n refuses x: stock(page: {size: $s}) } }",
    "argument itself": "query($s: Int) { boxes { n refuses x: limit(size: $s) } }",
}

# The field under test and how the runner executes it.
STRATEGY = {
    "root field": ("root", Strategy.STOCK),
    "direct resolver": ("direct", Strategy.DIRECT),
    "batch resolver": ("batch", Strategy.BATCH),
    "stock resolve": ("stock", Strategy.STOCK),
    "argument itself": ("limit", Strategy.DIRECT),
}


def _errors(result: Any) -> list[dict[str, Any]]:
    return sorted(
        (
            {
                "message": e.message,
                "path": e.path,
                "locations": [(loc.line, loc.column) for loc in e.locations or []],
                "extensions": e.extensions,
            }
            for e in result.errors or []
        ),
        key=repr,
    )


@pytest.mark.parametrize("case", list(FIELDS))
async def test_arguments_that_do_not_coerce_are_bad_user_input_on_both_executors(
    case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    strategies: list[tuple[str, Strategy]] = []
    raw_arguments = Run.raw_arguments

    def spy(self: Run, fp: Any) -> dict[str, Any]:
        strategies.append((fp.name, fp.strategy))
        return raw_arguments(self, fp)

    monkeypatch.setattr(Run, "raw_arguments", spy)
    query = FIELDS[case]

    planned = await _schema(True).execute(query, variable_values={"s": None})
    expected = await _schema(False).execute(query, variable_values={"s": None})

    assert STRATEGY[case] in strategies, strategies  # the runner's path under test ran
    assert planned.data == expected.data
    assert _errors(planned) == _errors(expected)
    refused = [e for e in _errors(planned) if "has invalid value" in e["message"]]
    assert refused, planned.errors
    for error in refused:
        assert error["extensions"] == {"code": "BAD_USER_INPUT"}, error
        assert error["message"].endswith(
            "Expected variable '$s' provided to non-null type 'Int!' not to be None."
        )
        assert error["path"][-1] in ("root", "x"), error
        assert error["locations"], error
    if case != "root field":
        assert len(refused) == 2  # one for each object of the level, as graphql-core
        assert planned.data == {
            "boxes": [{"n": 1, "refuses": None, "x": None}, {"n": 2, "refuses": None, "x": None}]
        }
        # A resolver raising a GraphQLError of its own is not marked as bad input.
        own = [e for e in _errors(planned) if e["message"] == "a resolver's own refusal"]
        assert len(own) == 2 and all(e["extensions"] == {} for e in own), own
