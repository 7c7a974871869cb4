"""Unit tests of the work queue's priorities (controller-runtime's priority queue semantics):
higher priority first, FIFO within a priority, merged adds keep the higher priority and their
place, and the client-go guarantees (dirty/processing, retries, metrics) still hold."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from informers.clock import FakeClock
from informers.ratelimit import ItemExponentialFailureRateLimiter
from informers.workqueue import (
    LOW_PRIORITY,
    NORMAL_PRIORITY,
    RateLimitingQueue,
    RecordingQueueMetrics,
    WorkQueue,
)

JOIN_TIMEOUT = 5.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def queue(clock: FakeClock) -> Iterator[WorkQueue[str]]:
    q: WorkQueue[str] = WorkQueue(name="test", clock=clock)
    yield q
    q.shut_down()


@pytest.fixture
def rl_queue(clock: FakeClock) -> Iterator[RateLimitingQueue[str]]:
    q: RateLimitingQueue[str] = RateLimitingQueue(
        name="test", clock=clock, rate_limiter=ItemExponentialFailureRateLimiter(1.0, 100.0)
    )
    yield q
    q.shut_down()


def take_all(queue: WorkQueue[str]) -> list[tuple[str, int]]:
    taken = []
    while len(queue):
        item, priority, shutdown = queue.get_with_priority()
        assert item is not None and not shutdown
        queue.done(item)
        taken.append((item, priority))
    return taken


def test_higher_priority_comes_first_and_fifo_within_a_priority(queue: WorkQueue[str]) -> None:
    for n in range(3):
        queue.add(f"listed-{n}", priority=LOW_PRIORITY)
    queue.add("new-0")
    queue.add("listed-3", priority=LOW_PRIORITY)
    queue.add("new-1")

    assert take_all(queue) == [
        ("new-0", NORMAL_PRIORITY),
        ("new-1", NORMAL_PRIORITY),
        ("listed-0", LOW_PRIORITY),
        ("listed-1", LOW_PRIORITY),
        ("listed-2", LOW_PRIORITY),
        ("listed-3", LOW_PRIORITY),
    ]


def test_a_new_object_does_not_wait_behind_thousands_from_the_initial_list(
    queue: WorkQueue[str],
) -> None:
    for n in range(5000):
        queue.add(f"settled-{n}", priority=LOW_PRIORITY)
    assert queue.get_with_priority() == ("settled-0", LOW_PRIORITY, False)
    queue.add("created-just-now")

    assert queue.get_with_priority() == ("created-just-now", NORMAL_PRIORITY, False)
    assert len(queue) == 4999


def test_a_merged_add_keeps_the_higher_priority_and_its_place(queue: WorkQueue[str]) -> None:
    queue.add("a", priority=LOW_PRIORITY)
    queue.add("b", priority=LOW_PRIORITY)
    queue.add("c")
    queue.add("b")  # a watch event for an object of the initial list: raised
    queue.add("c", priority=LOW_PRIORITY)  # a resync of a queued new object: not lowered

    assert len(queue) == 3
    assert take_all(queue) == [
        ("b", NORMAL_PRIORITY),
        ("c", NORMAL_PRIORITY),
        ("a", LOW_PRIORITY),
    ]


def test_raised_items_keep_the_order_of_their_first_add(queue: WorkQueue[str]) -> None:
    queue.add("x", priority=LOW_PRIORITY)
    queue.add("y", priority=LOW_PRIORITY)
    queue.add("z")
    queue.add("y")
    queue.add("x")

    assert [item for item, _ in take_all(queue)] == ["x", "y", "z"]


def test_an_item_added_while_processing_returns_with_the_highest_priority_it_got(
    queue: WorkQueue[str],
) -> None:
    queue.add("a", priority=LOW_PRIORITY)
    queue.add("b", priority=LOW_PRIORITY)
    item, priority, _ = queue.get_with_priority()
    assert (item, priority) == ("a", LOW_PRIORITY)
    queue.add("a", priority=LOW_PRIORITY)
    queue.add("a")  # while processing: dirty, with the higher priority
    assert len(queue) == 1  # not queued twice, not handed out while processing
    queue.done("a")

    assert take_all(queue) == [("a", NORMAL_PRIORITY), ("b", LOW_PRIORITY)]


def test_get_keeps_its_plain_form(queue: WorkQueue[str]) -> None:
    queue.add("low", priority=LOW_PRIORITY)
    queue.add("high")

    assert queue.get() == ("high", False)


def test_a_delayed_item_comes_back_with_its_priority(
    rl_queue: RateLimitingQueue[str], clock: FakeClock
) -> None:
    rl_queue.add_after("later-low", 5.0, priority=LOW_PRIORITY)
    rl_queue.add_after("later-high", 10.0)
    rl_queue.add("now-low", priority=LOW_PRIORITY)
    clock.step(10.0)
    assert wait_until(lambda: len(rl_queue) == 3)

    assert take_all(rl_queue) == [
        ("later-high", NORMAL_PRIORITY),
        ("now-low", LOW_PRIORITY),
        ("later-low", LOW_PRIORITY),
    ]


def test_a_waiting_item_keeps_the_earlier_time_and_the_higher_priority(
    rl_queue: RateLimitingQueue[str], clock: FakeClock
) -> None:
    rl_queue.add_after("a", 2.0, priority=LOW_PRIORITY)
    rl_queue.add_after("a", 8.0)
    rl_queue.add("b", priority=LOW_PRIORITY)
    clock.step(2.0)
    assert wait_until(lambda: len(rl_queue) == 2)

    assert take_all(rl_queue) == [("a", NORMAL_PRIORITY), ("b", LOW_PRIORITY)]


def test_a_rate_limited_retry_keeps_the_priority_it_is_given(
    rl_queue: RateLimitingQueue[str], clock: FakeClock
) -> None:
    rl_queue.add("listed", priority=LOW_PRIORITY)
    item, priority, _ = rl_queue.get_with_priority()
    assert item == "listed"
    rl_queue.add_rate_limited(item, priority=priority)  # the worker loop passes it back
    rl_queue.done(item)
    rl_queue.add("new")
    clock.step(1.0)
    assert wait_until(lambda: len(rl_queue) == 2)

    assert take_all(rl_queue) == [("new", NORMAL_PRIORITY), ("listed", LOW_PRIORITY)]
    assert rl_queue.num_requeues("listed") == 1


def test_metrics_count_merged_priority_adds_once(clock: FakeClock) -> None:
    metrics = RecordingQueueMetrics()
    queue: WorkQueue[str] = WorkQueue(name="m", clock=clock, metrics=metrics)
    queue.add("a", priority=LOW_PRIORITY)
    queue.add("a")
    queue.add("b")
    assert (metrics.adds, metrics.depth) == (2, 2)
    take_all(queue)
    queue.shut_down()

    assert metrics.depth == 0
    assert len(metrics.work_durations) == 2


def test_concurrent_workers_with_random_priorities_never_share_an_item(clock: FakeClock) -> None:
    queue: WorkQueue[str] = WorkQueue(name="stress", clock=clock)
    rng = random.Random(7)
    guard = threading.Lock()
    in_flight: set[str] = set()
    overlaps: list[str] = []
    seen: set[str] = set()

    def work() -> None:
        while True:
            item, _, shutdown = queue.get_with_priority()
            if shutdown or item is None:
                return
            with guard:
                if item in in_flight:
                    overlaps.append(item)
                in_flight.add(item)
                seen.add(item)
            with guard:
                in_flight.discard(item)
            queue.done(item)

    workers = [threading.Thread(target=work, name=f"worker-{n}") for n in range(6)]
    for worker in workers:
        worker.start()
    keys = [f"key-{n}" for n in range(20)]
    for _ in range(300):
        queue.add(rng.choice(keys), priority=rng.choice((LOW_PRIORITY, NORMAL_PRIORITY, 10)))
    assert queue.shut_down_with_drain() is True
    for worker in workers:
        worker.join(JOIN_TIMEOUT)

    assert overlaps == []
    assert seen <= set(keys)


def wait_until(predicate: Callable[[], bool], timeout: float = JOIN_TIMEOUT) -> bool:
    """Poll ``predicate`` (the delaying queue's timer thread moves items) with a deadline."""
    deadline = time.monotonic() + timeout
    tick = threading.Event()
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        tick.wait(0.001)
    return True
