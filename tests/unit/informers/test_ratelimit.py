"""Unit tests of the rate limiters in ``informers.ratelimit``, on a ``FakeClock``."""

from __future__ import annotations

import threading
from collections.abc import Hashable

import pytest

from informers.clock import FakeClock
from informers.ratelimit import (
    BucketRateLimiter,
    ItemExponentialFailureRateLimiter,
    MaxOfRateLimiter,
    RateLimiter,
    default_controller_rate_limiter,
)


class FixedRateLimiter:
    """A limiter with a fixed delay and requeue count that records what it was asked."""

    def __init__(self, delay: float, requeues: int) -> None:
        self.delay = delay
        self.requeues = requeues
        self.asked: list[Hashable] = []
        self.forgotten: list[Hashable] = []

    def when(self, item: Hashable) -> float:
        self.asked.append(item)
        return self.delay

    def forget(self, item: Hashable) -> None:
        self.forgotten.append(item)

    def num_requeues(self, item: Hashable) -> int:
        return self.requeues


def test_exponential_backoff_doubles_from_5ms() -> None:
    limiter = ItemExponentialFailureRateLimiter()

    delays = [limiter.when("a") for _ in range(5)]

    assert delays == pytest.approx([0.005, 0.01, 0.02, 0.04, 0.08])
    assert limiter.num_requeues("a") == 5


def test_exponential_backoff_is_capped_at_1000s() -> None:
    limiter = ItemExponentialFailureRateLimiter()

    delays = [limiter.when("a") for _ in range(20)]

    assert delays[17] == pytest.approx(0.005 * 2**17)  # 655.36 s, the last uncapped delay
    assert delays[18:] == [1000.0, 1000.0]


def test_exponential_backoff_does_not_overflow_after_many_failures() -> None:
    limiter = ItemExponentialFailureRateLimiter(base_delay=0.005, max_delay=1000.0)

    for _ in range(5000):
        last = limiter.when("a")

    assert last == 1000.0


def test_exponential_backoff_is_per_item_and_forget_resets_it() -> None:
    limiter = ItemExponentialFailureRateLimiter(base_delay=1.0, max_delay=100.0)
    limiter.when("a")
    limiter.when("a")

    assert limiter.when("b") == 1.0
    limiter.forget("a")
    assert limiter.num_requeues("a") == 0
    assert limiter.when("a") == 1.0
    assert limiter.num_requeues("b") == 1


def test_exponential_backoff_counts_concurrent_failures_exactly() -> None:
    limiter = ItemExponentialFailureRateLimiter()
    threads = [
        threading.Thread(target=lambda: [limiter.when("a") for _ in range(250)], name=f"t{i}")
        for i in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5.0)

    assert limiter.num_requeues("a") == 1000


def test_bucket_allows_a_burst_then_spaces_by_one_over_qps() -> None:
    clock = FakeClock()
    limiter = BucketRateLimiter(qps=10.0, burst=100, clock=clock)

    burst = [limiter.when(i) for i in range(100)]
    after_burst = [limiter.when(i) for i in range(100, 103)]

    assert burst == [0.0] * 100
    assert after_burst == pytest.approx([0.1, 0.2, 0.3])


def test_bucket_refills_with_time_but_not_beyond_the_burst() -> None:
    clock = FakeClock()
    limiter = BucketRateLimiter(qps=10.0, burst=3, clock=clock)
    for item in range(5):  # 3 free, 2 reserved: the balance is -2 tokens
        limiter.when(item)

    clock.step(0.3)  # +3 tokens: balance 1
    assert limiter.when("x") == 0.0
    assert limiter.when("y") == pytest.approx(0.1)

    clock.step(1000.0)  # refills to the burst of 3, no more
    assert [limiter.when(i) for i in range(4)] == pytest.approx([0.0, 0.0, 0.0, 0.1])


def test_bucket_keeps_no_per_item_state() -> None:
    limiter = BucketRateLimiter(qps=10.0, burst=1, clock=FakeClock())
    limiter.when("a")
    limiter.forget("a")

    assert limiter.num_requeues("a") == 0
    assert limiter.when("a") == pytest.approx(0.1)  # forget does not return the token


def test_bucket_with_infinite_qps_never_delays() -> None:
    limiter = BucketRateLimiter(qps=float("inf"), burst=1, clock=FakeClock())

    assert [limiter.when("a") for _ in range(3)] == [0.0, 0.0, 0.0]


@pytest.mark.parametrize(
    ("qps", "burst"),
    [(0.0, 10), (-1.0, 10), (float("nan"), 10), (10.0, 0)],
    ids=["zero-qps", "negative-qps", "nan-qps", "zero-burst"],
)
def test_bucket_rejects_a_config_that_never_hands_out_tokens(qps: float, burst: int) -> None:
    with pytest.raises(ValueError, match=r"qps|burst"):
        BucketRateLimiter(qps=qps, burst=burst, clock=FakeClock())


@pytest.mark.parametrize(
    ("delays", "requeues", "expected_delay", "expected_requeues"),
    [
        ((0.5, 2.0), (3, 1), 2.0, 3),
        ((2.0, 0.5), (1, 3), 2.0, 3),
        ((0.0, 0.0), (0, 0), 0.0, 0),
    ],
    ids=["second-is-larger", "first-is-larger", "all-zero"],
)
def test_max_of_takes_the_largest_answer(
    delays: tuple[float, float],
    requeues: tuple[int, int],
    expected_delay: float,
    expected_requeues: int,
) -> None:
    first, second = (FixedRateLimiter(d, r) for d, r in zip(delays, requeues, strict=True))
    limiter = MaxOfRateLimiter(first, second)

    assert limiter.when("a") == expected_delay
    assert limiter.num_requeues("a") == expected_requeues
    assert first.asked == second.asked == ["a"]  # every limiter records the retry


def test_max_of_forgets_in_every_limiter() -> None:
    first, second = FixedRateLimiter(1.0, 0), FixedRateLimiter(2.0, 0)

    MaxOfRateLimiter(first, second).forget("a")

    assert first.forgotten == second.forgotten == ["a"]


def test_max_of_nothing_never_delays() -> None:
    limiter = MaxOfRateLimiter()

    assert (limiter.when("a"), limiter.num_requeues("a")) == (0.0, 0)


def test_default_controller_limiter_combines_backoff_and_bucket() -> None:
    clock = FakeClock()
    limiter: RateLimiter = default_controller_rate_limiter(clock)

    first_failures = [limiter.when(f"item-{i}") for i in range(100)]
    assert first_failures == pytest.approx([0.005] * 100)  # the bucket's burst covers them
    assert limiter.when("item-100") == pytest.approx(0.1)  # the bucket is empty: 10 qps

    clock.step(1000.0)
    assert [limiter.when("item-0") for _ in range(3)] == pytest.approx([0.01, 0.02, 0.04])
    limiter.forget("item-0")
    assert limiter.num_requeues("item-0") == 0
    assert limiter.when("item-0") == pytest.approx(0.005)
