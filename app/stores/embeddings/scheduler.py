"""A fair, cancellable queue in front of the embedding model.

The model is numpy on the machine's cores: two batches at once would only fight over them, so
one worker thread runs it. What runs next is chosen a small chunk at a time, round-robin over
lanes (one lane per tenant), so a tenant's short search waits for at most one chunk of another
tenant's long request instead of all of it. Background work (the indexer) has a lane of its own
that runs when no search is waiting, and every ``background_every`` turns even if one is, so
it is neither in the way of searches nor starved by them.

A thread cannot be killed, so stopping is cooperative: a caller that is cancelled (its request
timed out or went away) marks its job, the worker drops the job's remaining chunks, and the
chunk in flight checks the mark between the model's layers and gives up with :class:`Stopped`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, Sequence

# A step is one chunk of a job's work, run on the worker thread. It is handed a probe that says
# whether the job has been cancelled, and should call it often (between layers) and raise
# Stopped when it returns True.
StopProbe = Callable[[], bool]
Step = Callable[[StopProbe], None]


class Stopped(Exception):
    """Raised inside a step when its job was cancelled: the rest of the work is not wanted."""


class _Background:
    """The lane key of work nobody waits on interactively (indexing, repairs, scripts)."""

    def __repr__(self) -> str:
        return "BACKGROUND"


BACKGROUND: Hashable = _Background()


class Job:
    """One caller's work: its steps run in order, one per turn of its lane."""

    __slots__ = ("future", "lane", "next_step", "steps", "stop")

    def __init__(self, lane: Hashable, steps: Sequence[Step]) -> None:
        self.lane = lane
        self.steps = list(steps)
        self.next_step = 0
        self.future: concurrent.futures.Future[None] = concurrent.futures.Future()
        self.stop = threading.Event()

    def cancel(self) -> None:
        """Stop soon: no further step starts, and the running one stops at its next probe."""
        self.stop.set()
        self.future.cancel()

    @property
    def cancelled(self) -> bool:
        return self.stop.is_set()


def _settle(future: concurrent.futures.Future[None], error: BaseException | None) -> None:
    """Complete a job's future unless its waiter already gave up on it (then it is cancelled)."""
    try:
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)
    except concurrent.futures.InvalidStateError:
        pass


class FairScheduler:
    """Runs jobs' steps on one worker thread, round-robin over lanes, background last.

    The worker starts on the first job and ends after ``idle_seconds`` without work, so an
    unused model holds no thread (and a process forked while it was idle starts a new one).
    """

    def __init__(
        self, *, background_every: int = 4, idle_seconds: float = 10.0, name: str = "embedder"
    ) -> None:
        self.background_every = background_every
        self.idle_seconds = idle_seconds
        self.name = name
        self._cond = threading.Condition()
        self._lanes: OrderedDict[Hashable, deque[Job]] = OrderedDict()
        self._background: deque[Job] = deque()
        self._turns_since_background = 0
        self._worker: threading.Thread | None = None
        self._running: Job | None = None

    async def run(self, lane: Hashable, steps: Sequence[Step]) -> None:
        """Run ``steps`` in ``lane`` and wait for them; cancelling the caller stops the job."""
        job = self.submit(lane, steps)
        try:
            await asyncio.wrap_future(job.future)
        except asyncio.CancelledError:
            job.cancel()
            raise

    def run_blocking(self, lane: Hashable, steps: Sequence[Step]) -> None:
        """``run`` for threads that are not an event loop (scripts, benchmarks)."""
        if threading.current_thread() is self._worker:
            raise RuntimeError("run_blocking called from the scheduler's own worker thread")
        self.submit(lane, steps).future.result()

    def submit(self, lane: Hashable, steps: Sequence[Step]) -> Job:
        job = Job(lane, steps)
        if not job.steps:
            _settle(job.future, None)
            return job
        with self._cond:
            if lane is BACKGROUND:
                self._background.append(job)
            else:
                self._lanes.setdefault(lane, deque()).append(job)
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._work, name=self.name, daemon=True)
                self._worker.start()
            else:
                self._cond.notify()
        return job

    def queued_lanes(self) -> list[Hashable]:
        """Lanes with work waiting or running, in the order they will next be served."""
        with self._cond:
            lanes = [lane for lane, jobs in self._lanes.items() if jobs]
            return lanes + ([BACKGROUND] if self._background else [])

    @property
    def idle(self) -> bool:
        """Nothing queued and no step running."""
        with self._cond:
            return self._running is None and not self._background and not self._lanes

    def _work(self) -> None:
        while True:
            with self._cond:
                job = self._pick()
                while job is None:
                    woken = self._cond.wait(self.idle_seconds)
                    job = self._pick()
                    if job is None and not woken:
                        self._worker = None  # a submit from now on starts a new worker
                        return
                self._running = job
            error = self._step(job)
            with self._cond:
                self._running = None
                finished = job.next_step >= len(job.steps) or job.cancelled or error is not None
                if finished:
                    self._remove(job)
                if job.lane in self._lanes:
                    # Behind every lane that is waiting, including any that arrived meanwhile.
                    self._lanes.move_to_end(job.lane)
            if finished:
                if job.cancelled:
                    job.future.cancel()
                else:
                    _settle(job.future, error)

    def _step(self, job: Job) -> BaseException | None:
        """Run the job's next step; its error, if any (Stopped is a cancellation, not one)."""
        try:
            if not job.cancelled:
                job.steps[job.next_step](job.stop.is_set)
        except Stopped:
            job.stop.set()
        except Exception as exc:  # handed to the caller, who re-raises it where it waits
            return exc
        job.next_step += 1
        return None

    def _pick(self) -> Job | None:
        """The next job to run a step of (called with the lock held).

        Interactive lanes rotate: the front one is served, and goes to the back once its step
        is done (behind lanes that arrived while it ran), so every tenant with work gets a turn
        before any gets a second. The background lane goes when no search waits, or after
        ``background_every`` turns of searches while it waited.
        """
        self._drop_cancelled()
        if self._background and (
            not self._lanes or self._turns_since_background >= self.background_every
        ):
            self._turns_since_background = 0
            return self._background[0]
        if not self._lanes:
            return None
        jobs = next(iter(self._lanes.values()))
        if self._background:
            self._turns_since_background += 1
        return jobs[0]

    def _drop_cancelled(self) -> None:
        """Forget jobs whose caller has gone before they take another turn."""
        for jobs in [*self._lanes.values(), self._background]:
            for job in [j for j in jobs if j.cancelled]:
                jobs.remove(job)
                job.future.cancel()
        for lane in [lane for lane, jobs in self._lanes.items() if not jobs]:
            del self._lanes[lane]

    def _remove(self, job: Job) -> None:
        if job.lane is BACKGROUND:
            if job in self._background:
                self._background.remove(job)
            return
        jobs = self._lanes.get(job.lane)
        if jobs is not None and job in jobs:
            jobs.remove(job)
            if not jobs:
                del self._lanes[job.lane]
