"""The scheduler in front of the model, and the token budgets, with stand-in work.

Steps here record their lane instead of running the model, and the first step of a test holds
the worker on a gate until everything else is queued, so the order the worker chooses is
exact and no assertion depends on timing.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable, Hashable

import pytest

from app.errors import ErrorCode
from app.stores.embeddings.budget import (
    EmbeddingLimitExceeded,
    EmbedLimits,
    TenantTokenBudgets,
    admit,
)
from app.stores.embeddings.port import EmbedMeter
from app.stores.embeddings.scheduler import BACKGROUND, FairScheduler, Step, Stopped, StopProbe

WAIT = 10.0  # seconds: only ever reached when something is broken


class Recorder:
    """Steps that append ``(lane, index)`` to one list, in the order the worker runs them."""

    def __init__(self) -> None:
        self.order: list[tuple[Hashable, int]] = []

    def steps(self, lane: Hashable, count: int) -> list[Step]:
        def step(index: int) -> Step:
            def run(should_stop: StopProbe) -> None:
                self.order.append((lane, index))

            return run

        return [step(i) for i in range(count)]


def gate_step(opened: threading.Event, started: threading.Event) -> Step:
    """A step that holds the worker until ``opened`` is set: what it is running is known."""

    def run(should_stop: StopProbe) -> None:
        started.set()
        assert opened.wait(WAIT)

    return run


def hold_worker(scheduler: FairScheduler) -> tuple[threading.Event, Callable[[], None]]:
    opened, started = threading.Event(), threading.Event()
    scheduler.submit("gate", [gate_step(opened, started)])
    assert started.wait(WAIT)
    return opened, opened.set


def wait_idle(scheduler: FairScheduler) -> None:
    deadline = time.monotonic() + WAIT
    while not scheduler.idle:
        assert time.monotonic() < deadline, scheduler.queued_lanes()
        time.sleep(0.005)


def test_a_small_search_waits_for_at_most_one_chunk_of_a_long_request() -> None:
    scheduler = FairScheduler()
    record = Recorder()
    opened, started = threading.Event(), threading.Event()
    heavy = scheduler.submit("A", [gate_step(opened, started), *record.steps("A", 10)])
    assert started.wait(WAIT)  # A's first chunk is running
    small = scheduler.submit("B", record.steps("B", 1))
    opened.set()
    small.future.result(WAIT)
    heavy.future.result(WAIT)
    # B ran as soon as A's chunk in flight was done, before any more of A's.
    assert record.order[0] == ("B", 0), record.order
    assert len(record.order) == 11


def test_tenants_take_turns_a_chunk_at_a_time() -> None:
    scheduler = FairScheduler()
    record = Recorder()
    _, release = hold_worker(scheduler)
    jobs = [scheduler.submit(lane, record.steps(lane, 3)) for lane in ("A", "B", "C")]
    release()
    for job in jobs:
        job.future.result(WAIT)
    assert record.order == [(lane, i) for i in range(3) for lane in ("A", "B", "C")]


def test_one_tenants_requests_queue_behind_each_other_not_in_front_of_others() -> None:
    scheduler = FairScheduler()
    record = Recorder()
    _, release = hold_worker(scheduler)
    first = scheduler.submit("A", record.steps("A", 2))
    second = scheduler.submit("A", record.steps("A2", 2))
    other = scheduler.submit("B", record.steps("B", 2))
    release()
    for job in (first, second, other):
        job.future.result(WAIT)
    assert record.order == [("A", 0), ("B", 0), ("A", 1), ("B", 1), ("A2", 0), ("A2", 1)]


def test_background_work_yields_to_searches_but_is_not_starved() -> None:
    scheduler = FairScheduler(background_every=2)
    record = Recorder()
    _, release = hold_worker(scheduler)
    index = scheduler.submit(BACKGROUND, record.steps(BACKGROUND, 2))
    search = scheduler.submit("A", record.steps("A", 5))
    release()
    index.future.result(WAIT)
    search.future.result(WAIT)
    lanes = [lane for lane, _ in record.order]
    assert lanes == ["A", "A", BACKGROUND, "A", "A", BACKGROUND, "A"]


def test_background_runs_at_once_when_no_search_waits() -> None:
    scheduler = FairScheduler()
    record = Recorder()
    scheduler.submit(BACKGROUND, record.steps(BACKGROUND, 3)).future.result(WAIT)
    assert record.order == [(BACKGROUND, i) for i in range(3)]


async def test_a_cancelled_caller_stops_its_work_at_the_next_probe() -> None:
    scheduler = FairScheduler()
    record = Recorder()
    started, probed = threading.Event(), threading.Event()

    def long_chunk(should_stop: StopProbe) -> None:
        started.set()
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:  # a model's layers, asking between each
            if should_stop():
                probed.set()
                raise Stopped
            time.sleep(0.001)

    task = asyncio.create_task(scheduler.run("A", [long_chunk, *record.steps("A", 5)]))
    assert await asyncio.to_thread(started.wait, WAIT)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await asyncio.to_thread(probed.wait, WAIT)
    await asyncio.to_thread(wait_idle, scheduler)
    assert record.order == []  # none of the later chunks ran
    # The worker serves others afterwards as before.
    await scheduler.run("B", record.steps("B", 1))
    assert record.order == [("B", 0)]


async def test_a_timed_out_caller_drops_its_queued_chunks() -> None:
    scheduler = FairScheduler()
    record = Recorder()
    _, release = hold_worker(scheduler)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await scheduler.run("A", record.steps("A", 3))
    release()
    await asyncio.to_thread(wait_idle, scheduler)
    assert record.order == []


async def test_a_failing_step_fails_its_caller_and_the_worker_goes_on() -> None:
    scheduler = FairScheduler()

    def broken(should_stop: StopProbe) -> None:
        raise ValueError("bad chunk")

    with pytest.raises(ValueError, match="bad chunk"):
        await scheduler.run("A", [broken])
    record = Recorder()
    await scheduler.run("A", record.steps("A", 1))
    assert record.order == [("A", 0)]


def test_the_worker_ends_when_idle_and_a_new_one_starts_on_demand() -> None:
    scheduler = FairScheduler(idle_seconds=0.05, name="idle-test")
    record = Recorder()
    scheduler.submit("A", record.steps("A", 1)).future.result(WAIT)
    deadline = time.monotonic() + WAIT
    while any(t.name == "idle-test" for t in threading.enumerate()):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    scheduler.submit("A", record.steps("A", 1)).future.result(WAIT)
    assert record.order == [("A", 0), ("A", 0)]


def test_work_runs_on_one_thread_that_is_not_the_callers() -> None:
    scheduler = FairScheduler()
    threads: set[int] = set()

    def step(should_stop: StopProbe) -> None:
        threads.add(threading.get_ident())

    for lane in ("A", "B", BACKGROUND):
        scheduler.run_blocking(lane, [step, step])
    assert len(threads) == 1
    assert threading.get_ident() not in threads


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_tenant_budget_refills_at_its_rate_and_tenants_are_separate() -> None:
    clock = Clock()
    budgets = TenantTokenBudgets(clock)
    a, b = uuid.uuid4(), uuid.uuid4()
    assert budgets.take(a, 500, per_minute=600) == 0
    assert budgets.take(a, 200, per_minute=600) == pytest.approx(10.0)  # 100 short, 10/s
    assert budgets.take(b, 600, per_minute=600) == 0  # B has its own bucket
    clock.now += 10
    assert budgets.take(a, 200, per_minute=600) == 0
    clock.now += 3600
    assert budgets.left(a, per_minute=600) == 600  # a bucket never holds more than a minute


def test_over_the_request_bound_nothing_is_charged() -> None:
    budgets = TenantTokenBudgets(Clock())
    tenant = uuid.uuid4()
    limits = EmbedLimits(tokens_per_request=300, tokens_per_tenant_per_minute=1000)
    meter = EmbedMeter()
    admit(limits, budgets, tenant, 256, meter)
    with pytest.raises(EmbeddingLimitExceeded) as caught:
        admit(limits, budgets, tenant, 256, meter)
    assert caught.value.extensions == {
        "code": ErrorCode.OPERATION_LIMIT.value,
        "limit": "embedTokensPerRequest",
        "allowed": 300,
        "requested": 512,
    }
    assert meter.tokens == 256
    assert budgets.left(tenant, per_minute=1000) == 1000 - 256


def test_over_the_tenant_budget_the_error_says_when_to_retry() -> None:
    budgets = TenantTokenBudgets(Clock())
    tenant = uuid.uuid4()
    limits = EmbedLimits(tokens_per_request=600, tokens_per_tenant_per_minute=600)
    admit(limits, budgets, tenant, 500, EmbedMeter())
    meter = EmbedMeter()
    with pytest.raises(EmbeddingLimitExceeded) as caught:
        admit(limits, budgets, tenant, 200, meter)
    assert caught.value.extensions["limit"] == "embedTokensPerTenantPerMinute"
    assert caught.value.extensions["retryAfterSeconds"] == 10
    assert meter.tokens == 0
