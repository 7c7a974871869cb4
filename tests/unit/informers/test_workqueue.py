"""Unit tests of ``informers.workqueue.WorkQueue``: dedup, stinginess, shutdown and metrics."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator

import pytest

from informers.clock import FakeClock
from informers.workqueue import RecordingQueueMetrics, WorkQueue

JOIN_TIMEOUT = 5.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def queue(clock: FakeClock) -> Iterator[WorkQueue[str]]:
    q: WorkQueue[str] = WorkQueue(name="test", clock=clock)
    yield q
    q.shut_down()


def wait_for(predicate: Callable[[], bool], *, timeout: float = JOIN_TIMEOUT) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` real seconds have passed."""
    deadline = time.monotonic() + timeout
    tick = threading.Event()
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        tick.wait(0.001)
    return True


def start(target: Callable[[], None], name: str) -> threading.Thread:
    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    return thread


def test_items_come_out_in_fifo_order(queue: WorkQueue[str]) -> None:
    for item in ("a", "b", "c"):
        queue.add(item)

    assert [queue.get() for _ in range(3)] == [("a", False), ("b", False), ("c", False)]


def test_duplicate_adds_merge(queue: WorkQueue[str]) -> None:
    queue.add("a")
    queue.add("b")
    queue.add("a")

    assert len(queue) == 2
    assert queue.get() == ("a", False)
    assert queue.get() == ("b", False)
    assert len(queue) == 0


def test_item_added_while_processing_is_requeued_on_done(queue: WorkQueue[str]) -> None:
    queue.add("a")
    assert queue.get() == ("a", False)

    queue.add("a")
    queue.add("a")
    assert len(queue) == 0  # not handed out again while a worker holds it

    queue.done("a")
    assert len(queue) == 1
    assert queue.get() == ("a", False)
    queue.done("a")
    assert len(queue) == 0


def test_done_without_new_add_does_not_requeue(queue: WorkQueue[str]) -> None:
    queue.add("a")
    queue.get()
    queue.done("a")

    assert len(queue) == 0


def test_done_for_an_item_not_being_processed_is_a_no_op(queue: WorkQueue[str]) -> None:
    queue.add("a")
    queue.done("a")  # queued, not handed out: must not be queued twice
    queue.done("zzz")

    assert len(queue) == 1


def test_none_cannot_be_added(queue: WorkQueue[str]) -> None:
    with pytest.raises(ValueError, match="None"):
        queue.add(None)  # type: ignore[arg-type]
    assert len(queue) == 0


def test_waiting_worker_gets_the_requeued_item_only_after_done(queue: WorkQueue[str]) -> None:
    queue.add("a")
    assert queue.get() == ("a", False)  # worker 1 holds "a"
    queue.add("a")
    queue.add("b")
    got: list[tuple[str | None, bool]] = []

    def take_two() -> None:
        got.append(queue.get())
        got.append(queue.get())

    second_worker = start(take_two, "worker-2")

    assert wait_for(lambda: len(got) == 1)
    assert got == [("b", False)]
    assert second_worker.is_alive()  # "a" is dirty but held by worker 1

    queue.done("a")
    second_worker.join(JOIN_TIMEOUT)
    assert got == [("b", False), ("a", False)]


def test_one_item_is_never_processed_by_two_workers_at_once(clock: FakeClock) -> None:
    metrics = RecordingQueueMetrics()
    queue: WorkQueue[str] = WorkQueue(name="stress", clock=clock, metrics=metrics)
    keys = [f"key-{i}" for i in range(4)]
    guard = threading.Lock()
    in_flight: set[str] = set()
    overlaps: list[str] = []
    processed: Counter[str] = Counter()

    def work() -> None:
        while True:
            item, _ = queue.get()
            if item is None:
                return
            with guard:
                if item in in_flight:
                    overlaps.append(item)
                in_flight.add(item)
            with guard:
                in_flight.discard(item)
                processed[item] += 1
            queue.done(item)

    workers = [start(work, f"worker-{i}") for i in range(6)]
    for _ in range(200):
        for key in keys:
            queue.add(key)
    assert queue.shut_down_with_drain() is True
    for worker in workers:
        worker.join(JOIN_TIMEOUT)

    assert overlaps == []
    assert set(processed) == set(keys)
    assert metrics.depth == 0
    assert len(metrics.work_durations) == sum(processed.values())


@pytest.mark.parametrize(
    "shut_down",
    [WorkQueue.shut_down, WorkQueue.shut_down_with_drain],
    ids=["shut_down", "shut_down_with_drain"],
)
def test_shutdown_hands_out_queued_items_then_the_flag(
    queue: WorkQueue[str], shut_down: Callable[[WorkQueue[str]], object]
) -> None:
    queue.add("a")
    shut_down(queue)
    queue.add("b")  # ignored once shutting down

    assert queue.shutting_down() is True
    assert queue.get() == ("a", False)
    assert queue.get() == (None, True)


def test_shut_down_wakes_every_blocked_get(queue: WorkQueue[str]) -> None:
    results: list[tuple[str | None, bool]] = []
    getters = [start(lambda: results.append(queue.get()), f"getter-{i}") for i in range(3)]

    queue.shut_down()
    for getter in getters:
        getter.join(JOIN_TIMEOUT)

    assert results == [(None, True)] * 3


def test_shut_down_with_drain_waits_for_items_in_flight(queue: WorkQueue[str]) -> None:
    queue.add("a")
    queue.get()
    drained: list[bool] = []
    drainer = start(lambda: drained.append(queue.shut_down_with_drain()), "drainer")

    assert wait_for(queue.shutting_down)
    assert drainer.is_alive()
    assert queue.get() == (None, True)

    queue.done("a")
    drainer.join(JOIN_TIMEOUT)
    assert drained == [True]


def test_shut_down_with_drain_gives_up_at_its_timeout(
    queue: WorkQueue[str], clock: FakeClock
) -> None:
    queue.add("a")
    queue.get()
    drained: list[bool] = []
    drainer = start(lambda: drained.append(queue.shut_down_with_drain(timeout=2.0)), "drainer")

    assert clock.wait_for_waiter(2.0)
    clock.step(1.0)
    assert drainer.is_alive()  # a waiter due at 2.0 is not woken at 1.0

    clock.step(1.0)
    drainer.join(JOIN_TIMEOUT)
    assert drained == [False]


def test_shut_down_cancels_a_drain(queue: WorkQueue[str]) -> None:
    queue.add("a")
    queue.get()
    drained: list[bool] = []
    drainer = start(lambda: drained.append(queue.shut_down_with_drain()), "drainer")
    assert wait_for(queue.shutting_down)

    queue.shut_down()
    drainer.join(JOIN_TIMEOUT)

    assert drained == [False]


def test_metrics_hooks_follow_client_go_semantics(clock: FakeClock) -> None:
    metrics = RecordingQueueMetrics()
    queue: WorkQueue[str] = WorkQueue(name="metrics", clock=clock, metrics=metrics)
    queue.add("a")
    clock.step(1.0)
    queue.add("b")
    queue.add("a")  # merged: neither an add nor depth
    assert (metrics.adds, metrics.depth) == (2, 2)

    clock.step(2.0)
    queue.get()
    queue.get()
    assert metrics.depth == 0
    assert metrics.queue_durations == [3.0, 2.0]

    clock.step(4.0)
    queue.update_unfinished_work()
    assert metrics.unfinished_work_seconds == 8.0
    assert metrics.longest_running_processor_seconds == 4.0

    queue.add("b")  # while processing: counted, depth rises
    assert (metrics.adds, metrics.depth) == (3, 1)
    queue.done("a")
    clock.step(1.0)
    queue.done("b")
    assert metrics.work_durations == [4.0, 5.0]

    clock.step(0.5)
    assert queue.get() == ("b", False)
    assert metrics.queue_durations == [3.0, 2.0, 1.5]  # dirty since the add at t=7
    queue.update_unfinished_work()
    assert metrics.unfinished_work_seconds == 0.0
    assert metrics.longest_running_processor_seconds == 0.0
    queue.shut_down()
