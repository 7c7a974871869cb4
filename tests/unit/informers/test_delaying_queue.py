"""Unit tests of ``DelayingQueue`` and ``RateLimitingQueue``, driven by a ``FakeClock``.

The timer thread is synchronised with ``FakeClock.wait_for_waiter``: once it waits for the
expected deadline, it has finished reacting to every earlier change.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest

from informers.clock import FakeClock
from informers.ratelimit import ItemExponentialFailureRateLimiter
from informers.workqueue import DelayingQueue, RateLimitingQueue, RecordingQueueMetrics

IDLE = None  # the timer thread waits without a deadline when nothing is waiting


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def metrics() -> RecordingQueueMetrics:
    return RecordingQueueMetrics()


@pytest.fixture
def queue(clock: FakeClock, metrics: RecordingQueueMetrics) -> Iterator[DelayingQueue[str]]:
    q: DelayingQueue[str] = DelayingQueue(name="test", clock=clock, metrics=metrics)
    yield q
    q.shut_down()


def drain(queue: DelayingQueue[str]) -> list[str]:
    """Take every queued item (without blocking) and mark it done."""
    items: list[str] = []
    while len(queue):
        item, _ = queue.get()
        assert item is not None
        queue.done(item)
        items.append(item)
    return items


def test_timer_thread_is_named_after_the_queue(queue: DelayingQueue[str]) -> None:
    assert "workqueue-test-timer" in [t.name for t in threading.enumerate()]


@pytest.mark.parametrize("delay", [0.0, -1.0], ids=["zero-delay", "negative-delay"])
def test_add_after_without_delay_adds_at_once(queue: DelayingQueue[str], delay: float) -> None:
    queue.add_after("a", delay)

    assert queue.get() == ("a", False)


def test_add_after_waits_until_the_clock_reaches_the_delay(
    queue: DelayingQueue[str], clock: FakeClock
) -> None:
    queue.add_after("a", 1.0)
    assert clock.wait_for_waiter(1.0)
    assert len(queue) == 0

    clock.step(0.5)
    assert clock.wait_for_waiter(1.0)
    assert len(queue) == 0

    clock.step(0.5)
    assert clock.wait_for_waiter(IDLE)
    assert drain(queue) == ["a"]


def test_items_become_ready_in_order_of_their_ready_time(
    queue: DelayingQueue[str], clock: FakeClock
) -> None:
    queue.add_after("c", 3.0)
    queue.add_after("a", 1.0)
    queue.add_after("b", 2.0)
    assert clock.wait_for_waiter(1.0)

    clock.step(2.0)
    assert clock.wait_for_waiter(3.0)
    assert drain(queue) == ["a", "b"]

    clock.step(1.0)
    assert clock.wait_for_waiter(IDLE)
    assert drain(queue) == ["c"]


def test_items_ready_at_once_come_out_in_ready_time_order(
    queue: DelayingQueue[str], clock: FakeClock
) -> None:
    for item, delay in [("c", 3.0), ("a", 1.0), ("b", 2.0)]:
        queue.add_after(item, delay)
    assert clock.wait_for_waiter(1.0)

    clock.step(10.0)
    assert clock.wait_for_waiter(IDLE)
    assert drain(queue) == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("first", "second"),
    [(5.0, 1.0), (1.0, 5.0)],
    ids=["earlier-add-replaces-later", "later-add-is-ignored"],
)
def test_a_waiting_item_keeps_its_earliest_ready_time(
    queue: DelayingQueue[str], clock: FakeClock, first: float, second: float
) -> None:
    queue.add_after("a", first)
    queue.add_after("a", second)
    assert clock.wait_for_waiter(1.0)

    clock.step(1.0)
    assert clock.wait_for_waiter(IDLE)
    assert drain(queue) == ["a"]

    clock.step(4.0)  # past the later time: "a" must not come a second time
    assert clock.wait_for_waiter(IDLE)
    assert len(queue) == 0


def test_a_delayed_item_merges_with_the_same_queued_item(
    queue: DelayingQueue[str], clock: FakeClock
) -> None:
    queue.add("a")
    queue.add_after("a", 1.0)
    assert clock.wait_for_waiter(1.0)

    clock.step(1.0)
    assert clock.wait_for_waiter(IDLE)
    assert drain(queue) == ["a"]


def test_add_after_counts_retries(
    queue: DelayingQueue[str], clock: FakeClock, metrics: RecordingQueueMetrics
) -> None:
    queue.add("a")
    queue.add_after("b", 0.0)
    queue.add_after("c", 1.0)

    assert metrics.retries == 2
    assert metrics.adds == 2  # "c" is not added until it is ready


def test_shut_down_drops_waiting_items_and_joins_the_timer(
    clock: FakeClock, metrics: RecordingQueueMetrics
) -> None:
    queue: DelayingQueue[str] = DelayingQueue(name="stopping", clock=clock, metrics=metrics)
    queue.add_after("a", 1.0)
    assert clock.wait_for_waiter(1.0)

    queue.shut_down()
    queue.add_after("b", 0.0)
    clock.step(1.0)

    assert "workqueue-stopping-timer" not in [t.name for t in threading.enumerate()]
    assert clock.waiters() == []
    assert queue.get() == (None, True)
    assert metrics.retries == 1


def test_shut_down_with_drain_stops_the_timer_after_items_in_flight(clock: FakeClock) -> None:
    queue: DelayingQueue[str] = DelayingQueue(name="draining", clock=clock)
    queue.add("a")
    queue.get()
    drained: list[bool] = []
    drainer = threading.Thread(
        target=lambda: drained.append(queue.shut_down_with_drain(timeout=10.0)), name="drainer"
    )
    drainer.start()
    assert clock.wait_for_waiter(10.0)
    assert drainer.is_alive()

    queue.done("a")
    drainer.join(5.0)

    assert drained == [True]
    assert "workqueue-draining-timer" not in [t.name for t in threading.enumerate()]


def rate_limiting_queue(clock: FakeClock) -> RateLimitingQueue[str]:
    limiter = ItemExponentialFailureRateLimiter(base_delay=1.0, max_delay=4.0)
    return RateLimitingQueue(name="retries", clock=clock, rate_limiter=limiter)


def test_add_rate_limited_delays_by_the_limiter(clock: FakeClock) -> None:
    queue = rate_limiting_queue(clock)
    try:
        expected_deadlines = [1.0, 3.0, 7.0, 11.0]  # delays 1, 2, 4, then capped at 4
        for attempt, deadline in enumerate(expected_deadlines, start=1):
            queue.add_rate_limited("a")
            assert queue.num_requeues("a") == attempt
            assert clock.wait_for_waiter(deadline)
            clock.set(deadline)
            assert clock.wait_for_waiter(IDLE)
            assert drain(queue) == ["a"]
    finally:
        queue.shut_down()


def keep(queue: RateLimitingQueue[str], item: str) -> None:
    """Finish an item without forgetting it (a worker loop after a failure)."""


@pytest.mark.parametrize(
    ("finish", "next_delay"),
    [(RateLimitingQueue.forget, 1.0), (keep, 2.0)],
    ids=["forget-resets-backoff", "without-forget-backoff-grows"],
)
def test_forget_resets_the_backoff(
    clock: FakeClock,
    finish: Callable[[RateLimitingQueue[str], str], None],
    next_delay: float,
) -> None:
    queue = rate_limiting_queue(clock)
    try:
        queue.add_rate_limited("a")
        assert clock.wait_for_waiter(1.0)
        clock.step(1.0)
        assert clock.wait_for_waiter(IDLE)
        assert drain(queue) == ["a"]

        finish(queue, "a")
        queue.add_rate_limited("a")

        assert clock.wait_for_waiter(1.0 + next_delay)
    finally:
        queue.shut_down()


def test_forget_clears_num_requeues(clock: FakeClock) -> None:
    queue = rate_limiting_queue(clock)
    try:
        queue.add_rate_limited("a")
        queue.add_rate_limited("a")
        assert queue.num_requeues("a") == 2

        queue.forget("a")

        assert queue.num_requeues("a") == 0
    finally:
        queue.shut_down()
