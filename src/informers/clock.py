"""Clocks for the work queue, rate limiters and anything else that measures time.

Contract:

- ``Clock.now()`` returns monotonic seconds: comparable only with other readings of the same
  clock, never decreasing, and unrelated to wall-clock time.
- ``Clock.wait_until(cond, deadline)`` blocks the calling thread, which must hold ``cond``'s
  lock, until ``cond`` is notified or the clock reaches ``deadline`` (``None``: no deadline).
  Like ``threading.Condition.wait`` it may return early, so callers re-check their predicate in
  a loop. Time-driven loops wait through this method so that a ``FakeClock`` can drive them.

``RealClock`` reads ``time.monotonic()``. ``FakeClock`` only moves when a test calls ``step()``
or ``set()``; that call wakes every thread whose deadline has been reached, so a timer thread
driven by a ``FakeClock`` is deterministic. Both are safe to use from any thread.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Protocol


class Clock(Protocol):
    """A source of monotonic time that can also wait for a deadline."""

    def now(self) -> float:
        """Return the current time in monotonic seconds."""
        ...

    def wait_until(self, cond: threading.Condition, deadline: float | None) -> None:
        """Wait on ``cond`` (its lock held by the caller) until notified or ``deadline``.

        May return spuriously; the caller re-checks its condition.
        """
        ...


class RealClock:
    """The process's monotonic clock (``time.monotonic``)."""

    def now(self) -> float:
        """Return ``time.monotonic()``."""
        return time.monotonic()

    def wait_until(self, cond: threading.Condition, deadline: float | None) -> None:
        """Wait on ``cond`` for at most ``deadline - now()`` seconds (forever if ``None``)."""
        if deadline is None:
            cond.wait()
        else:
            cond.wait(timeout=max(0.0, deadline - time.monotonic()))


@dataclass(eq=False)
class _Waiter:
    """One thread blocked in ``FakeClock.wait_until``; compared by identity."""

    cond: threading.Condition
    deadline: float | None


class FakeClock:
    """A manually stepped clock for tests.

    Invariants: time never goes backwards; every thread blocked in ``wait_until`` is listed in
    ``_waiters`` until it wakes; ``set()`` removes the waiters whose deadline has been reached
    and notifies their conditions, after releasing ``_lock`` (lock order: a waiter's condition
    lock, then ``_lock``; never the reverse).
    """

    def __init__(self, start: float = 0.0) -> None:
        self._lock = threading.Lock()
        # Notified whenever _waiters changes; used by wait_for_waiter(). Uses _lock.
        self._waiters_changed = threading.Condition(self._lock)
        self._now = start  # guarded by _lock
        self._waiters: list[_Waiter] = []  # guarded by _lock

    def now(self) -> float:
        """Return the fake time."""
        with self._lock:
            return self._now

    def step(self, seconds: float) -> None:
        """Advance the fake time by ``seconds`` (>= 0) and wake the waiters that are due."""
        if seconds < 0:
            raise ValueError(f"a monotonic clock cannot step backwards: {seconds!r}")
        with self._lock:
            target = self._now + seconds
        self.set(target)

    def set(self, t: float) -> None:
        """Set the fake time to ``t`` (not earlier than now) and wake the waiters that are due."""
        with self._lock:
            if t < self._now:
                raise ValueError(f"a monotonic clock cannot go back from {self._now} to {t}")
            self._now = t
            due = [w for w in self._waiters if w.deadline is not None and w.deadline <= t]
            for waiter in due:
                self._waiters.remove(waiter)
            if due:
                self._waiters_changed.notify_all()
        for waiter in due:
            with waiter.cond:
                waiter.cond.notify_all()

    def wait_until(self, cond: threading.Condition, deadline: float | None) -> None:
        """Wait on ``cond`` until notified or until ``set()`` reaches ``deadline``."""
        waiter = _Waiter(cond=cond, deadline=deadline)
        with self._lock:
            if deadline is not None and self._now >= deadline:
                return
            self._waiters.append(waiter)
            self._waiters_changed.notify_all()
        try:
            # No lost wake-up: set() notifies under cond's lock, which we hold until wait().
            cond.wait()
        finally:
            with self._lock:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                    self._waiters_changed.notify_all()

    def waiters(self) -> list[float | None]:
        """Return the deadlines of the threads now blocked in ``wait_until``."""
        with self._lock:
            return [w.deadline for w in self._waiters]

    def wait_for_waiter(self, deadline: float | None, *, timeout: float = 5.0) -> bool:
        """Block (real time, at most ``timeout`` s) until a thread waits for ``deadline``.

        Tests use this to know that a timer thread has finished reacting to the last change and
        is blocked again. Returns False on timeout.
        """
        with self._lock:
            return self._waiters_changed.wait_for(
                lambda: any(w.deadline == deadline for w in self._waiters), timeout=timeout
            )
