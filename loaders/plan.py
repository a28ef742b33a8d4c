"""The plan of one request: every store call its loaders made, in order, as they made it.

Recorded only when a request asks for it (``X-Chimera-Plan``, app/graphql_view.py); other
requests carry no recorder and pay nothing. For each batch: the store and the loader, how
many keys it was asked for, how many values came back (rows, hits or counters found), how
long the call took and when it started, and how many resolver calls it served: every
``load()`` of one of its keys, including those answered from the loader's cache after it
ran. That last number is what batching is worth: fifty ``Campaign.agents`` resolvers served
by one statement.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any

from app.pagination import Page


@dataclass
class PlanStep:
    store: str
    loader: str
    keys: int
    started_ms: float
    returned: int = 0
    duration_ms: float = 0.0
    served: int = 0
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        step: dict[str, Any] = {
            "store": self.store,
            "loader": self.loader,
            "keys": self.keys,
            "returned": self.returned,
            "servedCalls": self.served,
            "startedMs": round(self.started_ms, 3),
            "durationMs": round(self.duration_ms, 3),
        }
        if self.error is not None:
            step["error"] = self.error
        return step


@dataclass
class LoaderCalls:
    """One loader's ``load()`` calls: waiting for a batch, or attributed to the one that
    fetched their key."""

    pending: dict[Hashable, int] = field(default_factory=dict)
    fetched_by: dict[Hashable, PlanStep] = field(default_factory=dict)


class PlanRecorder:
    def __init__(self) -> None:
        self.origin = perf_counter()
        self.steps: list[PlanStep] = []
        self._calls: dict[int, LoaderCalls] = {}

    def called(self, loader: object, key: Hashable) -> None:
        calls = self._calls.setdefault(id(loader), LoaderCalls())
        step = calls.fetched_by.get(key)
        if step is not None:
            step.served += 1
        else:
            calls.pending[key] = calls.pending.get(key, 0) + 1

    def started(self, loader: object, store: str, keys: Sequence[Hashable]) -> PlanStep:
        step = PlanStep(
            store=store,
            loader=type(loader).__name__,
            keys=len(keys),
            started_ms=(perf_counter() - self.origin) * 1000,
        )
        self.steps.append(step)
        calls = self._calls.setdefault(id(loader), LoaderCalls())
        for key in keys:
            step.served += calls.pending.pop(key, 0)
            calls.fetched_by[key] = step
        return step

    def finished(self, step: PlanStep, values: Sequence[Any] | None, error: str | None) -> None:
        step.duration_ms = (perf_counter() - self.origin) * 1000 - step.started_ms
        step.error = error
        if values is not None:
            step.returned = sum(_found(value) for value in values)

    def as_json(self) -> dict[str, Any]:
        stores: dict[str, dict[str, float]] = {}
        for step in self.steps:
            total = stores.setdefault(step.store, {"calls": 0, "durationMs": 0.0})
            total["calls"] += 1
            total["durationMs"] = round(total["durationMs"] + step.duration_ms, 3)
        return {
            "storeCalls": len(self.steps),
            "byStore": stores,
            "steps": [step.as_json() for step in self.steps],
        }


def _found(value: Any) -> int:
    """What one key's value counts as: the rows of a list or a page, nothing for a miss,
    else one (a row, a count, a set of counters)."""
    if value is None or isinstance(value, BaseException):
        return 0
    if isinstance(value, Page):
        return len(value.rows)
    if isinstance(value, list):
        return len(value)
    return 1
