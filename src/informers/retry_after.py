"""How a client honours ``429 Too Many Requests`` and its ``Retry-After`` header.

The API server's Priority and Fairness (APF) answers a request it will not queue with ``429``
and a ``Retry-After`` of 1 to 32 seconds, before the request is executed: any verb, writes
included, can be sent again unchanged. client-go does that up to 10 times per request
(``checkWait``/``maxRetries``); so does :class:`RetryAfterPolicy`, with two more bounds: the
waits of one request add up to at most ``max_total_seconds``, and a wait is never shorter
than what the server asked for (a random extra of up to ``jitter`` × the wait spreads the
retries of many rejected requests, so they do not return together).

Pure logic: no I/O, no clock; randomness is passed in. Thread-safe (immutable).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

DEFAULT_MAX_RETRIES = 10
DEFAULT_MAX_TOTAL_SECONDS = 120.0
DEFAULT_RETRY_AFTER_SECONDS = 1.0


@dataclass(frozen=True, kw_only=True)
class RetryAfterPolicy:
    """Decides whether, and after how long, a request answered ``429`` is sent again.

    ``default_seconds`` is the wait when the answer names no ``Retry-After``. A policy with
    ``max_retries`` 0 never retries.
    """

    max_retries: int = DEFAULT_MAX_RETRIES
    max_total_seconds: float = DEFAULT_MAX_TOTAL_SECONDS
    default_seconds: float = DEFAULT_RETRY_AFTER_SECONDS
    jitter: float = 0.1
    rand: Callable[[], float] = field(default=random.random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")
        if self.max_total_seconds < 0 or self.default_seconds < 0 or self.jitter < 0:
            raise ValueError("max_total_seconds, default_seconds and jitter must be >= 0")

    def next_wait(self, *, retry_after: float | None, retries: int, waited: float) -> float | None:
        """The wait before retry number ``retries + 1``, or None to give up.

        ``retry_after`` is the server's header (None: absent); ``retries`` how many retries
        were already made; ``waited`` the seconds already spent waiting for this request.
        """
        if retries >= self.max_retries:
            return None
        asked = self.default_seconds if retry_after is None else max(0.0, retry_after)
        wait = asked * (1.0 + self.jitter * self.rand())
        if waited + asked > self.max_total_seconds:
            return None
        return min(wait, max(asked, self.max_total_seconds - waited))


NO_RETRIES = RetryAfterPolicy(max_retries=0)
