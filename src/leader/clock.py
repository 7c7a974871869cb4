"""Clocks for the elector: the real one and a fake one that tests step by hand.

Contract: ``now()`` is monotonic seconds and is the only time used to judge expiry;
``utcnow()`` is wall-clock time, used only to fill the human-readable timestamps of the Lease;
``wait(event, timeout)`` returns ``True`` as soon as ``event`` is set, or ``False`` once
``timeout`` seconds of *this clock* have passed.

Threads: :class:`RealClock` is stateless. :class:`FakeClock` is thread-safe: any number of
threads may ``wait`` while one test thread calls ``step``; a step wakes every waiter whose
deadline it reaches before ``step`` returns, so ``waiter_count()`` is exact right after it.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol

_FAKE_EPOCH = datetime(2020, 1, 1, tzinfo=UTC)
_EVENT_POLL_SECONDS = 0.002
"""A set ``threading.Event`` cannot notify our condition, so fake waiters look at it this often."""


class Clock(Protocol):
    """Time as seen by the elector (see the module docstring)."""

    def now(self) -> float:
        """Monotonic seconds; only differences are meaningful."""
        ...

    def utcnow(self) -> datetime:
        """The current wall-clock time, timezone-aware (UTC)."""
        ...

    def wait(self, event: threading.Event, timeout: float) -> bool:
        """Block until ``event`` is set (return ``True``) or ``timeout`` passed (``False``)."""
        ...


class RealClock:
    """The process clocks: ``time.monotonic`` and ``datetime.now(UTC)``."""

    def now(self) -> float:
        return time.monotonic()

    def utcnow(self) -> datetime:
        return datetime.now(UTC)

    def wait(self, event: threading.Event, timeout: float) -> bool:
        return event.wait(max(timeout, 0.0))


class _Waiter:
    """One blocked ``FakeClock.wait`` call."""

    __slots__ = ("deadline", "fired")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.fired = False  # guarded by FakeClock._cond


class FakeClock:
    """A clock that only moves when :meth:`step` is called; for tests.

    Invariant: every waiter in ``_waiters`` has a deadline later than ``_now``.
    """

    def __init__(self, *, start: float = 1000.0, wall_start: datetime = _FAKE_EPOCH) -> None:
        self._cond = threading.Condition()
        self._start = start
        self._wall_start = wall_start
        self._now = start  # guarded by _cond
        self._waiters: list[_Waiter] = []  # guarded by _cond

    def now(self) -> float:
        with self._cond:
            return self._now

    def utcnow(self) -> datetime:
        with self._cond:
            return self._wall_start + timedelta(seconds=self._now - self._start)

    def wait(self, event: threading.Event, timeout: float) -> bool:
        if event.is_set() or timeout <= 0:
            return event.is_set()
        with self._cond:
            waiter = _Waiter(self._now + timeout)
            self._waiters.append(waiter)
            self._cond.notify_all()
            try:
                while not waiter.fired and not event.is_set():
                    self._cond.wait(_EVENT_POLL_SECONDS)
            finally:
                if not waiter.fired:
                    self._waiters.remove(waiter)
                    self._cond.notify_all()
        return event.is_set()

    def step(self, seconds: float) -> None:
        """Advance the clock by ``seconds`` and wake the waiters whose deadline has come."""
        if seconds < 0:
            raise ValueError(f"a clock cannot go back: step({seconds})")
        with self._cond:
            self._advance_locked(self._now + seconds)

    def step_to(self, when: float) -> None:
        """Advance the clock to exactly ``when`` (no-op if it is already there or later)."""
        with self._cond:
            self._advance_locked(max(self._now, when))

    def _advance_locked(self, when: float) -> None:
        """Set the time and fire due waiters; called with ``_cond`` held."""
        self._now = when
        due = [w for w in self._waiters if w.deadline <= self._now]
        for waiter in due:
            waiter.fired = True
            self._waiters.remove(waiter)
        self._cond.notify_all()

    def waiter_count(self) -> int:
        """How many ``wait`` calls are blocked right now."""
        with self._cond:
            return len(self._waiters)

    def next_deadline(self) -> float | None:
        """The earliest deadline among blocked waiters, or ``None`` if nobody waits."""
        with self._cond:
            return min((w.deadline for w in self._waiters), default=None)

    def block_until_waiters(self, count: int, *, timeout: float) -> bool:
        """Wait (real time) until at least ``count`` callers are blocked in :meth:`wait`."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._waiters) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True
