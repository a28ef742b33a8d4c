"""Resolvers with a batch form: one call for every object of a list level.

A field whose value comes from a store is declared once, as a function over many source
objects (``many(sources, info, **arguments) -> values``, one value or exception per source,
in order), and attached to its Strawberry field with ``metadata=batched(many)``. The
planned executor (app/execution/runner.py) calls it once per level: a page of 50 campaigns
asks Redis for their counters in one call, with no coroutine per campaign. The field's own
resolver, which stock execution calls per object, is ``one(many, self, info, ...)``: the
same function with one source, so both executors run the same code, and DataLoaders still
batch the stock path's calls within a tick.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from inspect import isawaitable
from typing import Any, TypeVar

BATCH = "chimera.batch"

T = TypeVar("T")

Many = Callable[..., Sequence[Any] | Awaitable[Sequence[Any]]]


def batched(many: Many) -> dict[str, Any]:
    """Field metadata naming the batch form of the field's resolver."""
    return {BATCH: many}


async def one(many: Many, source: Any, info: Any, **arguments: Any) -> Any:
    """The value of ``many`` for a single source; an exception in its place is raised."""
    values = many([source], info, **arguments)
    if isawaitable(values):
        values = await values
    (value,) = values
    if isinstance(value, Exception):
        raise value
    return value


async def settle(pending: Sequence[Awaitable[T]]) -> list[T | Exception]:
    """Await DataLoader futures that were all requested in the same tick: after the first
    resolves, the batch has been answered and the rest are done. A failed key becomes its
    exception, so one bad key fails only its own object."""
    results: list[T | Exception] = []
    for future in pending:
        try:
            results.append(await future)
        except Exception as error:
            results.append(error)
    return results


def built(rows: Sequence[Any], build: Callable[[Any], Any]) -> list[Any]:
    """Objects from loaded rows, position by position: a missing row is None, a failed one
    (or one that cannot be built) its exception."""
    results: list[Any] = []
    for row in rows:
        if row is None or isinstance(row, Exception):
            results.append(row)
            continue
        try:
            results.append(build(row))
        except Exception as error:
            results.append(error)
    return results
