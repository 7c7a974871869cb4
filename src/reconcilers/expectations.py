"""Creations the controller made but its informers may not show yet (client-go's
``ControllerExpectations``).

After creating a Pod, Service or Secret, the reconciler records an expectation; until the
informer delivers the object (``observed``) or the TTL passes, a reconcile that does not see
the object in the cache must not create it again. The TTL bounds the harm of a lost watch
event. Thread-safe: workers and informer handler threads call it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from cachetools import TTLCache

DEFAULT_TTL_SECONDS = 30.0
MAX_ENTRIES = 100_000


class Expectations:
    """``(kind, namespace/name)`` pairs created and not yet observed."""

    def __init__(
        self, *, ttl: float = DEFAULT_TTL_SECONDS, timer: Callable[[], float] | None = None
    ) -> None:
        self._lock = threading.Lock()
        # guarded by _lock
        self._pending: TTLCache[tuple[str, str], bool] = TTLCache(
            maxsize=MAX_ENTRIES, ttl=ttl, timer=timer or time.monotonic
        )

    def expect(self, kind: str, key: str) -> None:
        with self._lock:
            self._pending[(kind, key)] = True

    def observed(self, kind: str, key: str) -> None:
        with self._lock:
            self._pending.pop((kind, key), None)

    def pending(self, kind: str, key: str) -> bool:
        with self._lock:
            return (kind, key) in self._pending
