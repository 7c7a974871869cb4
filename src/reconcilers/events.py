"""Events on Kernels (``core/v1`` Events), so ``kubectl describe kernel`` tells the story.

Recording is asynchronous and best effort, as client-go's event broadcaster: ``record()``
only appends to a bounded buffer and returns at once, so Events never slow a reconcile down;
one ``event-recorder`` thread writes them. When the buffer is full the oldest Event is
dropped (and counted). A failed write is logged and dropped. Messages are written by this
controller (or copied from the Pod's own Warning Events) and never carry the kernel's key.

Threads: ``record`` runs on worker threads; the writer on its own thread between ``start()``
and ``stop()``. Without ``start()`` (unit tests), ``record`` writes synchronously.
"""

from __future__ import annotations

import collections
import logging
import secrets
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from informers import ApiError, ResourceClient
from reconcilers.model import API_VERSION, FIELD_MANAGER, KIND, Obj, meta

log = logging.getLogger(__name__)

MAX_MESSAGE_CHARS = 1024
BUFFER_SIZE = 10_000


class EventRecorder:
    """Creates Events about Kernels through ``events`` (a namespaced-path ResourceClient)."""

    def __init__(
        self,
        events: ResourceClient,
        *,
        instance: str,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        buffer_size: int = BUFFER_SIZE,
    ) -> None:
        self._events = events
        self._instance = instance
        self._wall_clock = wall_clock
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        self._buffer: collections.deque[dict[str, Any]] = collections.deque()  # guarded by _lock
        self._buffer_size = buffer_size
        self._stopping = False  # guarded by _lock
        self.dropped = 0  # guarded by _lock
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="event-recorder")
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Write what is buffered (for at most ``timeout`` seconds) and stop the thread."""
        with self._lock:
            self._stopping = True
            self._ready.notify()
        if self._thread is not None:
            self._thread.join(timeout)

    def record(self, kernel: Obj, *, type_: str, reason: str, message: str) -> None:
        """Queue one Event on ``kernel`` (written by the recorder thread)."""
        event = self._event(kernel, type_=type_, reason=reason, message=message)
        if self._thread is None:
            self._write(event)
            return
        with self._lock:
            if len(self._buffer) >= self._buffer_size:
                self._buffer.popleft()
                self.dropped += 1
            self._buffer.append(event)
            self._ready.notify()

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._buffer and not self._stopping:
                    self._ready.wait()
                if not self._buffer:
                    return
                event = self._buffer.popleft()
            self._write(event)

    def _write(self, event: dict[str, Any]) -> None:
        namespace = event["metadata"]["namespace"]
        try:
            self._events.create(event, namespace=namespace)
        except ApiError as err:
            involved = event["involvedObject"]
            log.warning(
                "could not record event %s on kernel %s/%s: %s",
                event["reason"],
                namespace,
                involved["name"],
                err,
            )

    def _event(self, kernel: Obj, *, type_: str, reason: str, message: str) -> dict[str, Any]:
        m = meta(kernel)
        name, namespace = m.get("name", ""), m.get("namespace", "")
        now = self._wall_clock().strftime("%Y-%m-%dT%H:%M:%SZ")
        return {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{name}.{secrets.token_hex(8)}", "namespace": namespace},
            "involvedObject": {
                "apiVersion": API_VERSION,
                "kind": KIND,
                "name": name,
                "namespace": namespace,
                "uid": m.get("uid", ""),
                "resourceVersion": m.get("resourceVersion", ""),
            },
            "type": type_,
            "reason": reason,
            "message": message[:MAX_MESSAGE_CHARS],
            "source": {"component": FIELD_MANAGER},
            "reportingComponent": FIELD_MANAGER,
            "reportingInstance": self._instance,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
