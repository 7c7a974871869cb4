"""Rate limiters that decide how long a failed item waits before it is retried.

The semantics follow client-go ``util/workqueue/default_rate_limiters.go``:

- ``when(item)`` records one more retry of ``item`` and returns the delay in seconds before it
  may be processed again. Every call counts: callers call it once per retry.
- ``forget(item)`` tells the limiter the item is done (it succeeded or was given up): its
  per-item history is cleared. Limiters without per-item state ignore it.
- ``num_requeues(item)`` is how many times ``when`` was called for the item since it was last
  forgotten (0 for limiters that keep no per-item history).

All limiters are thread-safe (one lock each, never held while calling another limiter) and
run on the caller's thread; they never block or sleep.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Hashable
from typing import Protocol

from informers.clock import Clock


class RateLimiter(Protocol):
    """Decides the retry delay of items; see the module docstring for the contract."""

    def when(self, item: Hashable) -> float:
        """Record a retry of ``item`` and return its delay in seconds (>= 0)."""
        ...

    def forget(self, item: Hashable) -> None:
        """Clear the retry history of ``item``."""
        ...

    def num_requeues(self, item: Hashable) -> int:
        """Return the number of retries of ``item`` since it was last forgotten."""
        ...


class ItemExponentialFailureRateLimiter:
    """Per-item exponential backoff: ``base_delay * 2**failures``, capped at ``max_delay``.

    The n-th call to ``when`` for an item (counting from 0) returns
    ``min(base_delay * 2**n, max_delay)``; ``forget`` restarts the sequence at ``base_delay``.
    """

    def __init__(self, base_delay: float = 0.005, max_delay: float = 1000.0) -> None:
        if base_delay < 0 or max_delay < 0:
            raise ValueError(f"delays must be >= 0, got {base_delay!r} and {max_delay!r}")
        self._base_delay = base_delay
        self._max_delay = max_delay
        self._lock = threading.Lock()
        self._failures: dict[Hashable, int] = {}  # guarded by _lock

    def when(self, item: Hashable) -> float:
        """Return the backoff for this failure of ``item`` and count the failure."""
        with self._lock:
            exponent = self._failures.get(item, 0)
            self._failures[item] = exponent + 1
        try:
            backoff = math.ldexp(self._base_delay, exponent)
        except OverflowError:
            return self._max_delay
        return min(backoff, self._max_delay)

    def forget(self, item: Hashable) -> None:
        """Reset the failure count of ``item``."""
        with self._lock:
            self._failures.pop(item, None)

    def num_requeues(self, item: Hashable) -> int:
        """Return the failure count of ``item``."""
        with self._lock:
            return self._failures.get(item, 0)


class BucketRateLimiter:
    """An overall token bucket (``qps`` refill per second, ``burst`` capacity), for all items.

    Reservation semantics of ``golang.org/x/time/rate``: the bucket starts full; every ``when``
    takes one token, letting the balance go negative, and returns the time until that token
    exists. So ``burst`` calls return 0, then each further call returns ``1/qps`` more than the
    previous one, until the bucket refills. ``qps=math.inf`` never delays.
    """

    def __init__(self, *, qps: float = 10.0, burst: int = 100, clock: Clock) -> None:
        if not qps > 0:
            raise ValueError(f"qps must be > 0, got {qps!r}")
        if burst < 1:
            raise ValueError(f"burst must be >= 1, got {burst!r}")
        self._qps = qps
        self._burst = burst
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens = float(burst)  # guarded by _lock; negative when tokens are reserved
        self._last = clock.now()  # guarded by _lock; when _tokens was last brought up to date

    def when(self, item: Hashable) -> float:
        """Reserve one token and return the seconds until it is available."""
        if math.isinf(self._qps):
            return 0.0
        with self._lock:
            now = self._clock.now()
            elapsed = max(0.0, now - self._last)
            self._tokens = min(float(self._burst), self._tokens + elapsed * self._qps)
            self._last = now
            self._tokens -= 1.0
            if self._tokens >= 0:
                return 0.0
            return -self._tokens / self._qps

    def forget(self, item: Hashable) -> None:
        """Do nothing: the bucket keeps no per-item state."""

    def num_requeues(self, item: Hashable) -> int:
        """Return 0: the bucket keeps no per-item state."""
        return 0


class MaxOfRateLimiter:
    """Combines limiters: the delay is the largest of theirs.

    ``when`` calls every limiter (each one records the retry); ``forget`` forgets in all of
    them; ``num_requeues`` is the largest count. With no limiters the delay is always 0.
    """

    def __init__(self, *limiters: RateLimiter) -> None:
        self._limiters = tuple(limiters)

    def when(self, item: Hashable) -> float:
        """Return the largest delay of the limiters, having called each one."""
        delays = [limiter.when(item) for limiter in self._limiters]
        return max(delays, default=0.0)

    def forget(self, item: Hashable) -> None:
        """Forget ``item`` in every limiter."""
        for limiter in self._limiters:
            limiter.forget(item)

    def num_requeues(self, item: Hashable) -> int:
        """Return the largest retry count of the limiters."""
        return max((limiter.num_requeues(item) for limiter in self._limiters), default=0)


def default_controller_rate_limiter(clock: Clock) -> MaxOfRateLimiter:
    """Return client-go's default controller limiter.

    The max of a per-item exponential backoff (5 ms doubling up to 1000 s) and an overall token
    bucket (10 qps, burst 100), which only matters when very many items fail at once.
    """
    return MaxOfRateLimiter(
        ItemExponentialFailureRateLimiter(base_delay=0.005, max_delay=1000.0),
        BucketRateLimiter(qps=10.0, burst=100, clock=clock),
    )
