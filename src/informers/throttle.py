"""Client-side request rate limit (client-go's ``--qps``/``--burst``): a token bucket that
makes ``wait()`` block until the next request may go out. Thread-safe; every API call of a
:class:`~informers.client.RestClient` passes through it on the caller's thread."""

from __future__ import annotations

import threading

from informers.clock import Clock, RealClock
from informers.ratelimit import BucketRateLimiter


class QpsThrottle:
    """At most ``qps`` requests per second on average, bursts of up to ``burst``."""

    def __init__(self, *, qps: float, burst: int, clock: Clock | None = None) -> None:
        self._bucket = BucketRateLimiter(qps=qps, burst=burst, clock=clock or RealClock())
        self._sleeper = threading.Event()  # never set: an interruptible-looking timed wait

    def wait(self) -> None:
        delay = self._bucket.when(None)
        if delay > 0:
            self._sleeper.wait(delay)
