"""Coalesced model calls: fewer handoffs under load, same answers, same deadlines and errors."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

import pytest

from app.services.coalescing import Coalescer
from app.services.model_store import Prediction
from app.services.probabilities import Probabilities
from app.services.records import Batch


class Echo:
    """Answers each record's ``a`` as a label; the first call can be held; ``a == 13`` raises."""

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.hold = threading.Event()
        self.hold.set()

    def predict(self, records: Sequence[Mapping[str, float]]) -> Prediction:
        self.calls.append(len(records))
        self.hold.wait(5)
        if any(record["a"] == 13 for record in records):
            raise ValueError("unlucky")
        return Prediction(
            predictions=[f"x{record['a']:g}" for record in records],
            probabilities=Probabilities.of([{"p": record["a"]} for record in records]),
        )


def batch(*values: float) -> Batch:
    return Batch([{"a": v} for v in values], ["a"], numeric=True)


async def _gather(coalescer: Coalescer, model: Echo, parts: list[Batch], budget: float) -> list:
    deadline = time.monotonic() + budget
    first = asyncio.ensure_future(coalescer.predict(model, parts[0], deadline))
    await asyncio.sleep(0.05)  # the first call is now running (and held)
    rest = [asyncio.ensure_future(coalescer.predict(model, p, deadline)) for p in parts[1:]]
    await asyncio.sleep(0.01)
    model.hold.set()
    return await asyncio.gather(first, *rest, return_exceptions=True)


@pytest.fixture
def pool() -> ThreadPoolExecutor:
    executor = ThreadPoolExecutor(max_workers=1)
    yield executor
    executor.shutdown(wait=True)


def test_requests_queued_behind_a_call_share_the_next_one(pool: ThreadPoolExecutor) -> None:
    model, coalescer = Echo(), Coalescer(pool, threads=1)
    model.hold.clear()
    answers = asyncio.run(_gather(coalescer, model, [batch(1), batch(2, 3), batch(4)], 5))
    assert model.calls == [1, 3]  # the held call, then one call for the three queued records
    assert [a.predictions for a in answers] == [["x1"], ["x2", "x3"], ["x4"]]
    assert [a.probabilities for a in answers] == [[{"p": 1}], [{"p": 2}, {"p": 3}], [{"p": 4}]]


def test_a_failing_request_does_not_fail_the_others(pool: ThreadPoolExecutor) -> None:
    model, coalescer = Echo(), Coalescer(pool, threads=1)
    model.hold.clear()
    answers = asyncio.run(_gather(coalescer, model, [batch(1), batch(2), batch(13), batch(4)], 5))
    assert model.calls == [1, 3, 1, 1, 1]  # combined call raised: each part alone
    assert answers[1].predictions == ["x2"] and answers[3].predictions == ["x4"]
    assert isinstance(answers[2], ValueError)


def test_a_request_past_its_deadline_in_the_queue_never_runs(pool: ThreadPoolExecutor) -> None:
    model, coalescer = Echo(), Coalescer(pool, threads=1)
    model.hold.clear()

    async def scenario() -> list:
        running = asyncio.ensure_future(coalescer.predict(model, batch(1), time.monotonic() + 5))
        await asyncio.sleep(0.05)
        late = coalescer.predict(model, batch(2), time.monotonic() + 0.05)
        late_answer = await asyncio.gather(late, return_exceptions=True)
        model.hold.set()
        return [await running, *late_answer]

    first, late = asyncio.run(scenario())
    assert first.predictions == ["x1"]
    assert isinstance(late, TimeoutError)
    assert model.calls == [1]


def test_other_models_get_their_own_call(pool: ThreadPoolExecutor) -> None:
    old, new, coalescer = Echo(), Echo(), Coalescer(pool, threads=1)
    old.hold.clear()

    async def scenario() -> list:
        deadline = time.monotonic() + 5
        first = asyncio.ensure_future(coalescer.predict(old, batch(1), deadline))
        await asyncio.sleep(0.05)
        rest = [
            asyncio.ensure_future(coalescer.predict(model, batch(v), deadline))
            for model, v in ((old, 2), (new, 3), (old, 4))
        ]
        await asyncio.sleep(0.01)
        old.hold.set()
        return await asyncio.gather(first, *rest)

    answers = asyncio.run(scenario())
    assert [a.predictions for a in answers] == [["x1"], ["x2"], ["x3"], ["x4"]]
    assert old.calls == [1, 1, 1] and new.calls == [1]  # in arrival order, never mixed


class StuckFirst:
    """The first call blocks until released; later calls answer at once."""

    def __init__(self) -> None:
        self.calls: list[list[float]] = []
        self.release = threading.Event()

    def predict(self, records: Sequence[Mapping[str, float]]) -> Prediction:
        self.calls.append([record["a"] for record in records])
        if len(self.calls) == 1:
            self.release.wait(5)
        return Prediction([f"x{record['a']:g}" for record in records], None)


def test_a_spare_thread_serves_the_queue_only_behind_a_slow_call() -> None:
    model = StuckFirst()
    with ThreadPoolExecutor(max_workers=2) as two:
        coalescer = Coalescer(two, threads=2, spare_after=0.3)

        async def scenario() -> tuple[list[list[float]], list[list[float]], list[Prediction]]:
            deadline = time.monotonic() + 5
            stuck = asyncio.ensure_future(coalescer.predict(model, batch(1), deadline))
            await asyncio.sleep(0.05)
            queued = [
                asyncio.ensure_future(coalescer.predict(model, batch(v), deadline)) for v in (2, 3)
            ]
            await asyncio.sleep(0.1)
            young = [list(call) for call in model.calls]  # the first call is 0.15 s old
            answers = await asyncio.gather(*queued)  # the spare thread, at 0.3 s
            spared = [list(call) for call in model.calls]
            model.release.set()
            await stuck
            return young, spared, answers

        young, spared, answers = asyncio.run(scenario())
    assert young == [[1.0]]  # not yet: the queue waits for the running call
    assert spared == [[1.0], [2.0, 3.0]]  # then one call for the whole queue
    assert [a.predictions for a in answers] == [["x2"], ["x3"]]


def test_joined_batches_keep_their_matrices() -> None:
    parts = [batch(1, 2), batch(3)]
    for part in parts:
        part.columns(["a"])
    joined = Batch.joined(parts)
    assert joined == [{"a": 1}, {"a": 2}, {"a": 3}]
    assert joined.columns(["a"]).tolist() == [[1.0], [2.0], [3.0]]


def test_each_event_loop_gets_its_own_futures(pool: ThreadPoolExecutor) -> None:
    """The coalescer remembers the loop it ran on; a later loop (or another thread's) is
    found again, so futures always belong to the loop awaiting them."""
    model, coalescer = Echo(), Coalescer(pool, threads=1)
    for _ in range(2):
        assert asyncio.run(_gather(coalescer, model, [batch(1), batch(2)], 5))
    results: list[list[Prediction | Exception]] = []
    thread = threading.Thread(
        target=lambda: results.append(asyncio.run(_gather(coalescer, model, [batch(3)], 5)))
    )
    thread.start()
    thread.join()
    assert results and results[0]


def test_deadlines_hold_on_a_later_event_loop(pool: ThreadPoolExecutor) -> None:
    """The expiry timer belongs to a loop: a later loop sets its own, even for a deadline later
    than the one the closed loop's timer was set for."""
    model, coalescer = Echo(), Coalescer(pool, threads=1)

    async def answered() -> Prediction:
        return await coalescer.predict(model, batch(1), time.monotonic() + 0.3)

    assert asyncio.run(answered()).predictions == ["x1"]  # the first loop's timer: ~0.3 s
    model.hold.clear()

    async def held() -> tuple[object, float]:
        started = time.monotonic()
        answers = await asyncio.gather(
            coalescer.predict(model, batch(2), time.monotonic() + 0.5), return_exceptions=True
        )
        return answers[0], time.monotonic() - started

    try:
        answer, waited = asyncio.run(held())
    finally:
        model.hold.set()
    assert isinstance(answer, TimeoutError)
    assert 0.45 <= waited < 2


def test_each_request_times_out_at_its_own_deadline(pool: ThreadPoolExecutor) -> None:
    """One timer serves every waiting request: each still fails at its own deadline, in any
    order of deadlines, and one answered in time is not touched."""
    model, coalescer = Echo(), Coalescer(pool, threads=1)
    model.hold.clear()

    async def scenario() -> list[tuple[str, float]]:
        started = time.monotonic()
        ended: list[tuple[str, float]] = []

        async def one(name: str, budget: float) -> None:
            try:
                await coalescer.predict(model, batch(1), started + budget)
                ended.append((name, time.monotonic() - started))
            except TimeoutError:
                ended.append((name + " timed out", time.monotonic() - started))

        tasks = [
            asyncio.ensure_future(one("held", 3.0)),  # running, held until 0.6 s
            asyncio.ensure_future(one("b", 0.4)),
            asyncio.ensure_future(one("a", 0.2)),
        ]
        await asyncio.sleep(0.6)
        model.hold.set()
        await asyncio.gather(*tasks)
        return ended

    ended = asyncio.run(scenario())
    assert [name for name, _ in ended] == ["a timed out", "b timed out", "held"]
    times = dict(ended)
    assert 0.19 <= times["a timed out"] < 0.35
    assert 0.39 <= times["b timed out"] < 0.55
    assert times["held"] >= 0.6
