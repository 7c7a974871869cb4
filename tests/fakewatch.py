"""A watch response for unit tests of informers: the test feeds the events one by one."""

from __future__ import annotations

import copy
import queue
import threading
from collections.abc import Iterator

from informers.client import WatchEvent
from informers.resource import Object

_END = object()


class FakeWatch:
    """One watch response: yields what the test feeds; ``close()`` or ``end()`` stops it."""

    def __init__(self) -> None:
        self._queue: queue.Queue[object] = queue.Queue()
        self.closed = threading.Event()

    def feed(self, event_type: str, obj: Object) -> None:
        self._queue.put(WatchEvent(type=event_type, object=copy.deepcopy(obj)))

    def fail(self, err: Exception) -> None:
        """The stream breaks: the iteration raises ``err``."""
        self._queue.put(err)

    def end(self) -> None:
        """The server ends the watch (timeoutSeconds reached)."""
        self._queue.put(_END)

    def close(self) -> None:
        self.closed.set()
        self._queue.put(_END)

    def __iter__(self) -> Iterator[WatchEvent]:
        while True:
            item = self._queue.get()
            if item is _END or self.closed.is_set():
                return
            if isinstance(item, Exception):
                raise item
            assert isinstance(item, WatchEvent)
            yield item
