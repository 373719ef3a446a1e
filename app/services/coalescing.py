"""Model calls of concurrent requests, coalesced: one pool handoff and one model call for the
requests that queued while a model call ran.

A handoff to a pool thread and back costs tens of microseconds of CPU (queue, thread wake-up,
GIL, the event loop's wake-up), more than the model itself takes for a few records. Requests on
one event loop call ``Coalescer.predict``. With no model call running, a request's records go to
the pool at once (alone, at low load). While one runs, requests wait in a queue, and when it
finishes everything queued for the same model goes in one call (up to ``max_rows`` records).

The pool's other threads are spares: one more call starts only once the oldest running call
has run for ``spare_after`` seconds, so a model stuck on one input does not hold up the
requests queued behind it, while a fast model answers the whole queue with one call and one
handoff instead of spreading it over several. Each request still waits only until its own
deadline: past it, ``predict`` raises ``TimeoutError``, and a request that times out while
queued is never run.

If a combined call raises, each request's records are predicted again on their own, so one
request's failure is never another's.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass
from typing import Protocol

from app.services.model_store import Prediction
from app.services.records import Batch

Records = Sequence[Mapping[str, float]]

# A timer may fire this early (uvloop's resolution is a millisecond): a job this close to its
# deadline counts as past it.
TIMER_SLACK = 0.001


class Predicts(Protocol):
    def predict(self, records: Records) -> Prediction: ...


@dataclass(eq=False, slots=True)
class _Job:
    model: Predicts
    records: Records
    deadline: float
    answer: asyncio.Future[Prediction]


class Coalescer:
    """Runs model calls for one event loop in ``pool``, at most ``threads`` at a time, the
    second and later ones only while the oldest running call is older than ``spare_after``
    seconds."""

    def __init__(
        self,
        pool: ThreadPoolExecutor,
        threads: int,
        max_rows: int = 1000,
        spare_after: float = 0.005,
    ) -> None:
        self._pool = pool
        self._threads = threads
        self.max_rows = max_rows
        self.spare_after = spare_after
        self._queue: deque[_Job] = deque()
        self._started: list[float] = []  # per running call, when it was handed to the pool
        self._spare_timer: asyncio.TimerHandle | None = None
        self._kick_due = False
        self._loop: tuple[asyncio.AbstractEventLoop, int] | None = None
        # Jobs not known to be answered, oldest first, and one timer for the earliest deadline
        # among them (not a timer per request: with uvloop, one costs ~3 us to set and cancel).
        self._waiting: deque[_Job] = deque()
        self._expiry: asyncio.TimerHandle | None = None
        self._expiry_at = math.inf  # the deadline (monotonic) the timer is set for
        self._expiry_loop: asyncio.AbstractEventLoop | None = None

    async def predict(self, model: Predicts, records: Records, deadline: float) -> Prediction:
        """The model's answer for ``records``; ``TimeoutError`` once ``deadline`` (monotonic
        seconds) passed, or the model's exception."""
        loop = self._running_loop()
        answer: asyncio.Future[Prediction] = loop.create_future()
        job = _Job(model, records, deadline, answer)
        self._queue.append(job)
        if loop is not self._expiry_loop:  # a new event loop (a worker runs one; tests more)
            self._waiting = deque(w for w in self._waiting if w.answer.get_loop() is loop)
            self._expiry, self._expiry_at, self._expiry_loop = None, math.inf, loop
        self._waiting.append(job)
        if deadline < self._expiry_at:
            self._expire_at(loop, deadline)
        self._kick_soon(loop)
        return await answer

    def _expire_at(self, loop: asyncio.AbstractEventLoop, deadline: float) -> None:
        """Set the expiry timer for ``deadline`` (monotonic seconds)."""
        if self._expiry is not None:
            self._expiry.cancel()
        self._expiry_at = deadline
        remaining = max(0.0, deadline - time.monotonic())
        self._expiry = loop.call_at(loop.time() + remaining, self._expire_due, loop)

    def _expire_due(self, loop: asyncio.AbstractEventLoop) -> None:
        """At the timer: every waiting job past its deadline gets ``TimeoutError`` (a queued one
        is then skipped, a running one's result dropped); the timer is set again for the
        earliest deadline left."""
        if loop is not self._expiry_loop:  # the timer of a loop this coalescer left
            return
        self._expiry, self._expiry_at = None, math.inf
        due = time.monotonic() + TIMER_SLACK
        waiting: deque[_Job] = deque()
        for job in self._waiting:
            if job.answer.done():
                continue
            if job.deadline <= due:
                job.answer.set_exception(TimeoutError())
            else:
                waiting.append(job)
        self._waiting = waiting
        if waiting:
            self._expire_at(loop, min(job.deadline for job in waiting))

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        """The running event loop. ``asyncio.get_running_loop`` makes a ``getpid`` system call
        on every call (Python 3.11); a thread runs one loop at a time, so the loop this
        coalescer last ran on, still running in the same thread, is the running one."""
        cached = self._loop
        if cached is not None and cached[1] == threading.get_ident() and cached[0].is_running():
            return cached[0]
        loop = asyncio.get_running_loop()
        self._loop = (loop, threading.get_ident())
        return loop

    @property
    def _running(self) -> int:
        """Calls handed to the pool and not yet back (event loop only)."""
        return len(self._started)

    def _kick_soon(self, loop: asyncio.AbstractEventLoop) -> None:
        """Dispatch at the next loop iteration, so the requests ready in this one queue their
        records first and share the call. While a call runs, the spare timer (if set) or the
        call's end dispatches instead."""
        if not self._queue or self._kick_due or self._running >= self._threads:
            return
        if self._running and self._spare_timer is not None:
            return
        self._kick_due = True
        loop.call_soon(self._kick, loop)

    def _kick(self, loop: asyncio.AbstractEventLoop) -> None:
        self._kick_due = False
        while self._queue and self._running < self._threads:
            if self._running:
                wait = min(self._started) + self.spare_after - time.monotonic()
                if wait > 0:  # the running call is young: the queue waits for its end
                    if self._spare_timer is None:
                        self._spare_timer = loop.call_later(wait, self._spare_due, loop)
                    return
            self._dispatch(loop)

    def _spare_due(self, loop: asyncio.AbstractEventLoop) -> None:
        self._spare_timer = None
        self._kick(loop)

    def _dispatch(self, loop: asyncio.AbstractEventLoop) -> None:
        jobs = self._take()
        if not jobs:
            return
        started = time.monotonic()
        self._started.append(started)
        call = self._pool.submit(_run, jobs[0].model, [job.records for job in jobs])

        def back(done: Future[list[Prediction | Exception]]) -> None:
            with suppress(RuntimeError):  # the loop is closed: nobody waits for these answers
                loop.call_soon_threadsafe(self._finished, loop, jobs, done, started)

        call.add_done_callback(back)

    def _take(self) -> list[_Job]:
        """The next call's jobs: the oldest live job and those after it for the same model."""
        now = time.monotonic()
        jobs: list[_Job] = []
        rows = 0
        while self._queue:
            job = self._queue[0]
            if job.answer.done() or job.deadline <= now:  # timed out while queued: never run
                self._queue.popleft()
                if not job.answer.done():
                    job.answer.set_exception(TimeoutError())
                continue
            full = rows + len(job.records) > self.max_rows
            if jobs and (job.model is not jobs[0].model or full):
                break
            jobs.append(self._queue.popleft())
            rows += len(job.records)
        return jobs

    def _finished(
        self,
        loop: asyncio.AbstractEventLoop,
        jobs: list[_Job],
        done: Future[list[Prediction | Exception]],
        started: float,
    ) -> None:
        self._started.remove(started)
        if self._spare_timer is not None:  # the queue goes to this thread now, or the timer is
            self._spare_timer.cancel()  # set again from the oldest call still running
            self._spare_timer = None
        try:
            results = done.result()
        except BaseException as exc:  # cancelled at shutdown, or a bug in _run
            error = exc if isinstance(exc, Exception) else RuntimeError("model call cancelled")
            results = [error] * len(jobs)
        for job, result in zip(jobs, results, strict=True):
            if job.answer.done():  # timed out meanwhile
                continue
            if isinstance(result, Exception):
                job.answer.set_exception(result)
            else:
                job.answer.set_result(result)
        waiting = self._waiting
        while waiting and waiting[0].answer.done():  # answered, or expired meanwhile
            waiting.popleft()
        self._kick_soon(loop)


def _run(model: Predicts, parts: list[Records]) -> list[Prediction | Exception]:
    """In a pool thread: one call for all parts, split back; each part alone if it raises."""
    if len(parts) > 1:
        sizes = [len(part) for part in parts]
        try:
            whole = model.predict(_concat(parts))
            if len(whole.predictions) == sum(sizes):
                return _split(whole, sizes)
        except Exception:  # found out below, part by part
            pass
    results: list[Prediction | Exception] = []
    for part in parts:
        try:
            results.append(model.predict(part))
        except Exception as exc:
            results.append(exc)
    return results


def _concat(parts: list[Records]) -> Records:
    first = parts[0]
    if isinstance(first, Batch) and all(
        isinstance(part, Batch) and part.names == first.names for part in parts
    ):
        return Batch.joined(parts)  # type: ignore[arg-type]
    return [record for part in parts for record in part]


def _split(whole: Prediction, sizes: list[int]) -> list[Prediction | Exception]:
    results: list[Prediction | Exception] = []
    start = 0
    for size in sizes:
        end = start + size
        probabilities = whole.probabilities
        results.append(
            Prediction(
                predictions=whole.predictions[start:end],
                probabilities=probabilities[start:end] if probabilities is not None else None,
            )
        )
        start = end
    return results
