"""Unit tests of ``informers.backoff.JitteredBackoff`` with a fake clock and fixed randomness."""

from __future__ import annotations

import random
from typing import Any

import pytest

from informers.backoff import JitteredBackoff
from informers.clock import FakeClock

# client-go's reflector policy: 0.8 s doubling, capped at 30 s.
EXPECTED_BASES = [0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 30.0, 30.0, 30.0]


def delays(backoff: JitteredBackoff, n: int) -> list[float]:
    return [backoff.next_delay() for _ in range(n)]


@pytest.mark.parametrize(
    ("rand_value", "expected"),
    [
        pytest.param(0.0, EXPECTED_BASES, id="no-jitter-drawn"),
        pytest.param(1.0, [2 * d for d in EXPECTED_BASES], id="full-jitter-drawn"),
        pytest.param(0.5, [1.5 * d for d in EXPECTED_BASES], id="half-jitter-drawn"),
    ],
)
def test_default_sequence_doubles_to_the_cap(rand_value: float, expected: list[float]) -> None:
    backoff = JitteredBackoff(clock=FakeClock(), rand=lambda: rand_value)

    assert delays(backoff, len(expected)) == pytest.approx(expected)


@pytest.mark.parametrize("jitter", [0.0, 0.5, 1.0, 2.0], ids=["j0", "j0.5", "j1", "j2"])
def test_jitter_stays_within_bounds(jitter: float) -> None:
    backoff = JitteredBackoff(clock=FakeClock(), jitter=jitter, rand=random.Random(1234).random)

    for base in EXPECTED_BASES:
        delay = backoff.next_delay()
        assert base <= delay <= base * (1 + jitter)


def test_jitter_is_actually_random() -> None:
    backoff = JitteredBackoff(clock=FakeClock(), cap=0.8, rand=random.Random(7).random)

    assert len(set(delays(backoff, 20))) > 1


def test_custom_initial_factor_and_cap() -> None:
    backoff = JitteredBackoff(clock=FakeClock(), initial=0.01, cap=0.05, factor=3.0, rand=lambda: 0)

    assert delays(backoff, 4) == pytest.approx([0.01, 0.03, 0.05, 0.05])


@pytest.mark.parametrize(
    ("quiet_seconds", "expected"),
    [
        pytest.param(60.0, 6.4, id="short-quiet-keeps-growing"),
        pytest.param(120.0, 6.4, id="exactly-reset-after-keeps-growing"),
        pytest.param(120.5, 0.8, id="longer-than-reset-after-starts-over"),
        pytest.param(3600.0, 0.8, id="hour-of-health-starts-over"),
    ],
)
def test_reset_after_a_quiet_period(quiet_seconds: float, expected: float) -> None:
    clock = FakeClock()
    backoff = JitteredBackoff(clock=clock, rand=lambda: 0.0)
    assert delays(backoff, 3) == pytest.approx([0.8, 1.6, 3.2])

    clock.step(quiet_seconds)

    assert backoff.next_delay() == pytest.approx(expected)


def test_quiet_period_is_measured_from_the_last_backoff() -> None:
    clock = FakeClock()
    backoff = JitteredBackoff(clock=clock, rand=lambda: 0.0)

    got = []
    for _ in range(4):  # failures 100 s apart: never 120 s without a backoff
        got.append(backoff.next_delay())
        clock.step(100.0)

    assert got == pytest.approx([0.8, 1.6, 3.2, 6.4])


def test_reset_starts_over() -> None:
    backoff = JitteredBackoff(clock=FakeClock(), rand=lambda: 0.0)
    delays(backoff, 5)

    backoff.reset()

    assert delays(backoff, 2) == pytest.approx([0.8, 1.6])


def test_is_a_tenacity_wait_strategy() -> None:
    backoff = JitteredBackoff(clock=FakeClock(), rand=lambda: 0.0)

    assert [backoff(object()), backoff(object())] == pytest.approx([0.8, 1.6])


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"initial": 0.0}, id="zero-initial"),
        pytest.param({"initial": -1.0}, id="negative-initial"),
        pytest.param({"initial": 5.0, "cap": 1.0}, id="initial-above-cap"),
        pytest.param({"factor": 0.5}, id="shrinking-factor"),
        pytest.param({"jitter": -0.1}, id="negative-jitter"),
        pytest.param({"reset_after": 0.0}, id="zero-reset-after"),
        pytest.param({"reset_after": -1.0}, id="negative-reset-after"),
    ],
)
def test_invalid_parameters_raise(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="backoff needs"):
        JitteredBackoff(clock=FakeClock(), **kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"initial": 1.0, "cap": 1.0}, id="initial-equals-cap"),
        pytest.param({"factor": 1.0}, id="constant-factor"),
        pytest.param({"jitter": 0.0}, id="no-jitter"),
    ],
)
def test_boundary_parameters_are_accepted(kwargs: dict[str, Any]) -> None:
    backoff = JitteredBackoff(clock=FakeClock(), rand=lambda: 0.0, **kwargs)

    first, second = delays(backoff, 2)
    assert first == pytest.approx(kwargs.get("initial", 0.8))
    assert second >= first
