"""Events on Kernels and KernelPools (``core/v1`` Events), so ``kubectl describe kernel`` tells
the story.

Recording is asynchronous and best effort, as client-go's event broadcaster: ``record()``
only updates an in-memory buffer and returns at once, so Events never slow a reconcile down;
one ``event-recorder`` thread writes them. Messages are written by this controller (or copied
from the Pod's own Warning Events) and never carry the kernel's key.

Repeats cost counts, not writes (client-go's ``EventCorrelator``): an Event identical to one
recorded before (same Kernel, type, reason and message) is a *series*; its first occurrence is
created at once, later ones only raise the series' ``count`` and ``lastTimestamp`` with a
PATCH of the existing Event, at most once per ``update_interval`` per series, however many
occurred meanwhile. So a storm of the same Warning costs one create and then at most one write
per series per interval. The memory of series is bounded (least recently used forgotten
first); a series whose Event is gone (expired, deleted) starts a new Event.

Bounds: at most ``buffer_size`` series wait to be created; beyond that the oldest waiting one
is dropped (and counted in ``dropped``). Of the created series, the ``max_series`` used last
are remembered, each by its key and a few numbers (not its Event body). A failed write is
logged and dropped. Events in a
namespace being deleted are refused by the API server (``NamespaceTerminating``): they are
dropped without a retry, and not even sent for a namespace already known to be terminating.

Threads: ``record`` runs on worker threads; the writer on its own thread between ``start()``
and ``stop()``. Without ``start()`` (unit tests), ``record`` writes synchronously.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from cachetools import LRUCache

from informers import ApiError, Forbidden, NotFound
from reconcilers.model import (
    API_VERSION,
    FIELD_MANAGER,
    KIND,
    POOL_API_VERSION,
    POOL_KIND,
    Obj,
    meta,
)
from reconcilers.terminating import TerminatingNamespaces

log = logging.getLogger(__name__)

MAX_MESSAGE_CHARS = 1024
BUFFER_SIZE = 10_000
MAX_SERIES = 4096  # client-go's maxLruCacheEntries
UPDATE_INTERVAL_SECONDS = 10.0

# namespace, name, uid, type, reason, message, kind (of the involved object)
SeriesKey = tuple[str, str, str, str, str, str, str]


class EventWriter(Protocol):
    """Where Events go: ``informers.ResourceClient`` on ``events`` (namespaced paths)."""

    def create(self, body: Mapping[str, Any], *, namespace: str | None = None) -> Any: ...

    def patch(
        self, name: str, patch: Mapping[str, Any], *, namespace: str | None = None
    ) -> Any: ...


@dataclass
class _Series:
    """One Event and its repeats; fields guarded by the recorder's ``_lock``."""

    first_timestamp: str  # when it was first recorded
    involved_version: str = ""  # the Kernel's resourceVersion then
    count: int = 1  # occurrences recorded
    written: int = 0  # the count the API server has (0: not created yet)
    event_name: str = ""  # the Event object's name once created
    written_at: float = 0.0  # monotonic time of the last write
    last_timestamp: str = ""
    due: float | None = None  # when it is scheduled for a write (None: nothing to write)


class EventRecorder:
    """Creates Events about Kernels through ``events``, correlating repeats into counts."""

    def __init__(
        self,
        events: EventWriter,
        *,
        instance: str,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
        buffer_size: int = BUFFER_SIZE,
        max_series: int = MAX_SERIES,
        update_interval: float = UPDATE_INTERVAL_SECONDS,
        terminating: TerminatingNamespaces | None = None,
    ) -> None:
        self._events = events
        self._instance = instance
        self._wall_clock = wall_clock
        self._monotonic = monotonic
        self._buffer_size = buffer_size
        self._update_interval = update_interval
        self._terminating = terminating if terminating is not None else TerminatingNamespaces()
        self._lock = threading.Lock()
        # Notified when a write becomes due earlier than the writer planned, or on stop.
        self._changed = threading.Condition(self._lock)
        # guarded by _lock; the created series used last
        self._series: LRUCache[SeriesKey, _Series] = LRUCache(max_series)
        # guarded by _lock; the series waiting to be created, oldest first
        self._new: dict[SeriesKey, _Series] = {}
        # guarded by _lock; (due, sequence, key) of scheduled writes, may hold stale entries
        self._schedule: list[tuple[float, int, SeriesKey]] = []
        self._sequence = itertools.count()  # guarded by _lock
        self._stopping = False  # guarded by _lock
        self.dropped = 0  # guarded by _lock
        self.writes = 0  # guarded by _lock; creates and patches sent
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="event-recorder")
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Write what is scheduled, due or not (for at most ``timeout`` s); stop the thread."""
        with self._lock:
            self._stopping = True
            self._changed.notify()
        if self._thread is not None:
            self._thread.join(timeout)

    def record(
        self,
        kernel: Obj,
        *,
        type_: str,
        reason: str,
        message: str,
        kind: str = KIND,
        times: int = 1,
    ) -> None:
        """Record ``times`` occurrences of an Event on ``kernel`` (written by the recorder
        thread); ``kind`` is the involved object's: a Kernel, or a KernelPool."""
        m = meta(kernel)
        namespace = m.get("namespace", "")
        if namespace in self._terminating:
            return
        message = message[:MAX_MESSAGE_CHARS]
        key: SeriesKey = (
            namespace,
            m.get("name", ""),
            m.get("uid", ""),
            type_,
            reason,
            message,
            kind,
        )
        now = self._wall_clock().strftime("%Y-%m-%dT%H:%M:%SZ")
        with self._lock:
            series = self._find_locked(key)
            if series is None:
                series = _Series(
                    first_timestamp=now,
                    involved_version=str(m.get("resourceVersion") or ""),
                    last_timestamp=now,
                    count=max(1, times),
                )
                self._new[key] = series
                self._drop_oldest_unwritten()
                self._schedule_locked(key, series, self._monotonic())
            else:
                series.count += max(1, times)
                series.last_timestamp = now
                if series.due is None:
                    self._schedule_locked(key, series, self._next_update(series))
        if self._thread is None:
            self._drain(flush=False)

    # ------------------------------------------------------------------ writer
    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._stopping and not self._due_locked():
                    self._changed.wait(self._wait_locked())
                stopping = self._stopping
            self._drain(flush=stopping)
            if stopping:
                return

    def _drain(self, *, flush: bool) -> None:
        """Write every series that is due now (every scheduled one with ``flush``)."""
        while True:
            with self._lock:
                taken = self._take_locked(flush=flush)
            if taken is None:
                return
            self._write(*taken)

    def _due_locked(self) -> bool:
        return bool(self._schedule) and self._schedule[0][0] <= self._monotonic()

    def _wait_locked(self) -> float | None:
        return max(0.0, self._schedule[0][0] - self._monotonic()) if self._schedule else None

    def _take_locked(self, *, flush: bool) -> tuple[SeriesKey, _Series, int, str] | None:
        """Pop the next series to write: its key, itself, and the count and time to write."""
        while self._schedule:
            due, _, key = self._schedule[0]
            series = self._find_locked(key)
            if series is None or series.due != due:
                heapq.heappop(self._schedule)  # stale: forgotten or rescheduled
                continue
            if not flush and due > self._monotonic():
                return None
            heapq.heappop(self._schedule)
            series.due = None
            if self._new.pop(key, None) is not None:
                self._series[key] = series  # created now: remembered for its repeats
            return key, series, series.count, series.last_timestamp
        return None

    def _write(self, key: SeriesKey, series: _Series, count: int, last: str) -> None:
        """Create the series' Event, or PATCH its count; on the writer's thread, no lock."""
        namespace = key[0]
        if namespace in self._terminating:
            return
        try:
            if series.event_name:
                try:
                    self._count_write()
                    self._events.patch(
                        series.event_name,
                        {"count": count, "lastTimestamp": last},
                        namespace=namespace,
                    )
                except NotFound:
                    series.event_name = ""  # expired or deleted: start a new Event
            if not series.event_name:
                body = self._event(key, series, count=count, last=last)
                self._count_write()
                self._events.create(body, namespace=namespace)
                series.event_name = body["metadata"]["name"]
        except ApiError as err:
            if isinstance(err, Forbidden) and err.namespace_terminating:
                self._terminating.mark(namespace)
                return
            log.warning(
                "could not record event %s on %s %s/%s: %s",
                key[4],
                key[6].lower(),
                namespace,
                key[1],
                err,
            )
            return
        with self._lock:
            series.written = count
            series.written_at = self._monotonic()
            if series.count > count and series.due is None:
                self._schedule_locked(key, series, self._next_update(series))

    def _count_write(self) -> None:
        with self._lock:
            self.writes += 1

    # --------------------------------------------------------------- internals
    def _schedule_locked(self, key: SeriesKey, series: _Series, due: float) -> None:
        series.due = due
        first = not self._schedule or due < self._schedule[0][0]
        heapq.heappush(self._schedule, (due, next(self._sequence), key))
        if first:
            self._changed.notify()

    def _next_update(self, series: _Series) -> float:
        """When a repeat is written: once the update interval since the last write has
        passed (the repeats in between are merged into one count update)."""
        now = self._monotonic()
        return max(now, series.written_at + self._update_interval) if series.written else now

    def _find_locked(self, key: SeriesKey) -> _Series | None:
        series = self._new.get(key)
        return series if series is not None else self._series.get(key)

    def _drop_oldest_unwritten(self) -> None:
        """Keep at most ``buffer_size`` series waiting to be created (the oldest go)."""
        while len(self._new) > self._buffer_size:
            del self._new[next(iter(self._new))]  # its schedule entry becomes stale
            self.dropped += 1

    def _event(self, key: SeriesKey, series: _Series, *, count: int, last: str) -> dict[str, Any]:
        namespace, name, uid, type_, reason, message, kind = key
        return {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{name}.{secrets.token_hex(8)}", "namespace": namespace},
            "involvedObject": {
                "apiVersion": POOL_API_VERSION if kind == POOL_KIND else API_VERSION,
                "kind": kind,
                "name": name,
                "namespace": namespace,
                "uid": uid,
                "resourceVersion": series.involved_version,
            },
            "type": type_,
            "reason": reason,
            "message": message,
            "source": {"component": FIELD_MANAGER},
            "reportingComponent": FIELD_MANAGER,
            "reportingInstance": self._instance,
            "firstTimestamp": series.first_timestamp,
            "lastTimestamp": last,
            "count": count,
        }
