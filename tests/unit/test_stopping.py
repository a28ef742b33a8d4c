"""Shutdown waits are bounded: what will not stop is named with where it waits, and the
shutdown goes on (app/stopping.py)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import pytest

from app.stopping import bounded_teardown, stop_task


async def _ignores_cancellation(release: asyncio.Event) -> None:
    """A loop that swallows its cancellation, as a buggy `except BaseException` would."""
    while not release.is_set():
        with contextlib.suppress(asyncio.CancelledError):
            await release.wait()


async def _waits_forever() -> None:
    await asyncio.Event().wait()


async def test_a_job_that_ends_when_cancelled_stops_quietly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    task = asyncio.create_task(_waits_forever(), name="quiet job")
    await asyncio.sleep(0)
    with caplog.at_level(logging.ERROR, logger="app.stopping"):
        await stop_task(task, grace=5)
    assert task.cancelled()
    assert caplog.records == []


async def test_a_job_that_ignores_cancellation_is_left_behind_and_named_with_its_stack(
    caplog: pytest.LogCaptureFixture,
) -> None:
    release = asyncio.Event()
    task = asyncio.create_task(_ignores_cancellation(release), name="stubborn job")
    await asyncio.sleep(0)
    started = time.monotonic()
    with caplog.at_level(logging.ERROR, logger="app.stopping"):
        await stop_task(task, grace=0.2)
    assert time.monotonic() - started < 5
    assert not task.done()
    (record,) = caplog.records
    assert "stubborn job did not stop within 0.2 s" in record.getMessage()
    assert "_ignores_cancellation" in record.getMessage()  # where it waits
    release.set()
    await task


async def _loses_one_cancellation() -> None:
    """A job that loses its first cancellation on the way (caught by a library, or raced by
    a timeout) and waits on, as the task sweeper once did at shutdown."""
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.Event().wait()
    await asyncio.Event().wait()


async def test_a_job_that_lost_its_cancellation_is_cancelled_again_and_stops(
    caplog: pytest.LogCaptureFixture,
) -> None:
    task = asyncio.create_task(_loses_one_cancellation(), name="lossy job")
    await asyncio.sleep(0)
    started = time.monotonic()
    with caplog.at_level(logging.ERROR, logger="app.stopping"):
        await stop_task(task, grace=5)
    assert task.cancelled()
    assert time.monotonic() - started < 4
    assert caplog.records == []


async def test_a_job_that_fails_while_stopping_is_logged_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def fails_on_cancel() -> None:
        try:
            await _waits_forever()
        finally:
            raise RuntimeError("close failed")

    task = asyncio.create_task(fails_on_cancel(), name="failing job")
    await asyncio.sleep(0)
    with caplog.at_level(logging.ERROR, logger="app.stopping"):
        await stop_task(task, grace=5)
    (record,) = caplog.records
    assert record.getMessage() == "failing job failed while stopping"
    assert record.exc_info is not None and "close failed" in str(record.exc_info[1])


async def test_cancelling_the_caller_of_stop_task_still_cancels_the_caller() -> None:
    release = asyncio.Event()
    stubborn = asyncio.create_task(_ignores_cancellation(release))
    await asyncio.sleep(0)
    caller = asyncio.create_task(stop_task(stubborn, grace=30))
    await asyncio.sleep(0.05)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    release.set()
    await stubborn


async def test_a_stuck_teardown_is_cut_at_its_bound_with_every_live_task_named(
    caplog: pytest.LogCaptureFixture,
) -> None:
    me = asyncio.current_task()
    assert me is not None
    bystander = asyncio.create_task(_waits_forever(), name="bystander")
    after: list[str] = []
    started = time.monotonic()
    with caplog.at_level(logging.ERROR, logger="app.stopping"):
        async with bounded_teardown(0.2, "shutdown") as stopping:
            stopping()
            await _waits_forever()  # a close that never returns
        after.append("went on")
    assert after == ["went on"]
    assert time.monotonic() - started < 5
    messages = [r.getMessage() for r in caplog.records]
    assert "shutdown still running 0.2 s after it began" in messages[0]
    assert "bystander" in messages[0] and "_waits_forever" in messages[0]
    assert messages[1] == "shutdown abandoned after 0.2 s"
    assert me.cancelling() == 0  # later waits of this task are not cut
    bystander.cancel()


async def test_a_teardown_that_swallows_the_cut_still_ends_and_leaves_no_cancellation() -> None:
    me = asyncio.current_task()
    assert me is not None
    async with bounded_teardown(0.1, "shutdown") as stopping:
        stopping()
        with contextlib.suppress(asyncio.CancelledError):
            await _waits_forever()
    assert me.cancelling() == 0
    await asyncio.sleep(0.01)  # not cancelled by what was taken back


async def test_no_bound_applies_before_the_teardown_begins() -> None:
    async with bounded_teardown(0.05, "shutdown") as stopping:
        await asyncio.sleep(0.2)  # serving: as long as it takes
        stopping()
        await asyncio.sleep(0.01)  # a quick teardown


async def test_a_cancellation_from_outside_is_not_mistaken_for_the_bound() -> None:
    async def serve() -> None:
        async with bounded_teardown(30, "shutdown"):
            await _waits_forever()

    task = asyncio.create_task(serve())
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
