"""Unit tests of ``RetryAfterPolicy``: how a 429 answer is waited out, and when to give up."""

from __future__ import annotations

import pytest

from informers.retry_after import NO_RETRIES, RetryAfterPolicy


def policy(**kwargs: object) -> RetryAfterPolicy:
    return RetryAfterPolicy(rand=lambda: 1.0, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [(1.0, 1.1), (32.0, 35.2), (0.0, 0.0), (None, 1.1)],
    ids=["one-second", "apf-maximum", "zero", "absent-uses-default"],
)
def test_the_wait_is_the_servers_retry_after_plus_at_most_the_jitter(
    retry_after: float | None, expected: float
) -> None:
    wait = policy().next_wait(retry_after=retry_after, retries=0, waited=0.0)

    assert wait == pytest.approx(expected)


def test_the_wait_is_never_shorter_than_retry_after() -> None:
    for rand in (0.0, 0.3, 0.999):
        p = RetryAfterPolicy(rand=lambda r=rand: r)
        wait = p.next_wait(retry_after=3.0, retries=2, waited=10.0)
        assert wait is not None
        assert wait >= 3.0


def test_gives_up_after_max_retries() -> None:
    p = policy(max_retries=3)

    assert p.next_wait(retry_after=1.0, retries=2, waited=2.0) is not None
    assert p.next_wait(retry_after=1.0, retries=3, waited=3.0) is None


def test_gives_up_when_the_server_asks_for_more_than_the_total_budget() -> None:
    p = policy(max_total_seconds=40.0)

    assert p.next_wait(retry_after=32.0, retries=0, waited=0.0) == pytest.approx(35.2)
    assert p.next_wait(retry_after=32.0, retries=1, waited=35.2) is None


def test_jitter_is_clipped_to_the_budget_but_never_below_retry_after() -> None:
    p = policy(max_total_seconds=10.0)

    assert p.next_wait(retry_after=9.5, retries=0, waited=0.0) == pytest.approx(10.0)
    assert p.next_wait(retry_after=4.0, retries=1, waited=6.0) == pytest.approx(4.0)


def test_no_retries_policy_never_retries() -> None:
    assert NO_RETRIES.next_wait(retry_after=1.0, retries=0, waited=0.0) is None


@pytest.mark.parametrize(
    "kwargs",
    [{"max_retries": -1}, {"max_total_seconds": -1.0}, {"jitter": -0.1}],
    ids=["retries", "total", "jitter"],
)
def test_negative_bounds_are_rejected(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be >= 0"):
        RetryAfterPolicy(**kwargs)  # type: ignore[arg-type]
