"""Jittered exponential backoff that resets after a period of health.

Same policy as client-go's reflector (``ExponentialBackoffManager``: 0.8 s doubling to a 30 s
cap, jitter factor 1.0, reset when no backoff was needed for 2 minutes). The object is a
``tenacity`` wait strategy (callable with a retry state) and can also be asked directly with
:meth:`next_delay`. Pure logic: time comes from the injected clock, randomness from ``rand``.
Thread-safe.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable

from informers.clock import Clock


class JitteredBackoff:
    """``next_delay()`` grows ``initial * factor**n`` (capped at ``cap``) plus up to
    ``jitter`` times as much again at random; it starts over from ``initial`` when the previous
    delay was asked for more than ``reset_after`` seconds ago."""

    def __init__(
        self,
        *,
        clock: Clock,
        initial: float = 0.8,
        cap: float = 30.0,
        factor: float = 2.0,
        jitter: float = 1.0,
        reset_after: float = 120.0,
        rand: Callable[[], float] = random.random,
    ) -> None:
        if not 0 < initial <= cap or factor < 1 or jitter < 0 or reset_after <= 0:
            raise ValueError("backoff needs 0 < initial <= cap, factor >= 1, jitter >= 0")
        self._clock = clock
        self._initial = initial
        self._cap = cap
        self._factor = factor
        self._jitter = jitter
        self._reset_after = reset_after
        self._rand = rand
        self._lock = threading.Lock()
        self._next = initial  # guarded by _lock
        self._last_asked: float | None = None  # guarded by _lock

    def next_delay(self) -> float:
        """The delay to wait now (and record that a backoff happened)."""
        now = self._clock.now()
        with self._lock:
            if self._last_asked is not None and now - self._last_asked > self._reset_after:
                self._next = self._initial
            self._last_asked = now
            base = self._next
            self._next = min(self._cap, self._next * self._factor)
        return base + base * self._jitter * self._rand()

    def reset(self) -> None:
        with self._lock:
            self._next = self._initial
            self._last_asked = None

    def __call__(self, retry_state: object) -> float:
        """tenacity wait strategy."""
        return self.next_delay()
