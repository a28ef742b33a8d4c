"""Stopping background work within a bound, and saying what would not stop.

Ctrl-C (or a SIGTERM from an orchestrator) must stop the service. A background loop that
does not end when cancelled, or a store client whose close never returns, would otherwise
hold the shutdown forever with nothing in the log to say why. Here every wait of the
shutdown is bounded: what is still running when the bound is reached is logged with its
stack (the place it waits) and left behind, and the shutdown goes on.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

log = logging.getLogger(__name__)

# Each background job gets this long to end once cancelled; the whole shutdown, the
# lifespan's grace (a setting) on top of it.
TASK_GRACE_SECONDS = 10.0
# How often a job that has not ended is cancelled again within its grace.
RECANCEL_SECONDS = 1.0


def describe(task: asyncio.Task[object]) -> str:
    """A task's name and where it waits, innermost frame last."""
    out = io.StringIO()
    task.print_stack(file=out)
    return out.getvalue().rstrip()


async def stop_task(task: asyncio.Task[Any], grace: float = TASK_GRACE_SECONDS) -> None:
    """Cancel ``task`` and wait up to ``grace`` seconds for it to end. A failure it ends
    with is logged, not raised: a job's failure must not stop the rest of the shutdown.
    Cancelling the caller while it waits still cancels the caller."""
    task.cancel()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    done: set[asyncio.Task[Any]] = set()
    while not done and (left := deadline - loop.time()) > 0:
        done, _ = await asyncio.wait({task}, timeout=min(RECANCEL_SECONDS, left))
        if not done:
            # Asked again: a cancellation can be lost on the way (a library that catches it
            # and goes on, a timeout racing it), and a job that lost one waits on.
            task.cancel()
    if not done:
        log.error(
            "%s did not stop within %g s of being cancelled; left behind:\n%s",
            task.get_name(),
            grace,
            describe(task),
        )
        return
    if not task.cancelled() and task.exception() is not None:
        log.error("%s failed while stopping", task.get_name(), exc_info=task.exception())


@asynccontextmanager
async def bounded_teardown(seconds: float, what: str) -> AsyncIterator[Callable[[], None]]:
    """Yields ``start``: call it when the teardown inside this block begins. If the rest of
    the block then takes longer than ``seconds``, every task still alive is logged with its
    stack, the block is cancelled where it waits, and the block ends as if it had finished
    (the cancellation does not propagate). Before ``start``, no bound applies."""
    loop = asyncio.get_running_loop()
    current = asyncio.current_task()
    assert current is not None, "bounded_teardown runs in a task"
    handle: asyncio.TimerHandle | None = None
    expired = False

    def expire() -> None:
        nonlocal expired
        expired = True
        alive = [t for t in asyncio.all_tasks(loop) if not t.done()]
        log.error(
            "%s still running %g s after it began; stopping it where it waits. Tasks alive:\n%s",
            what,
            seconds,
            "\n".join(describe(t) for t in alive),
        )
        current.cancel()

    def start() -> None:
        nonlocal handle
        if handle is None:
            handle = loop.call_later(seconds, expire)

    try:
        yield start
    except asyncio.CancelledError:
        if not expired:
            raise
        log.error("%s abandoned after %g s", what, seconds)
    finally:
        if handle is not None:
            handle.cancel()
        if expired:
            # Ours was the cancellation (whether it reached here or something on the way
            # swallowed it): take it back, so that later waits of this task are not cut.
            current.uncancel()
