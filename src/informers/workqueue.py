"""Work queues for controllers: ``WorkQueue``, ``DelayingQueue`` and ``RateLimitingQueue``.

The semantics are those of client-go ``util/workqueue`` (queue.go, delaying_queue.go,
rate_limiting_queue.go):

- Fair: items are handed out in the order in which they were added (FIFO) — among items of
  the same priority. Every add takes a priority (an ``int``, default ``NORMAL_PRIORITY`` 0);
  ``get`` hands out the highest priority first. This is controller-runtime's priority queue
  (v0.20+): a controller gives the keys of its initial list and of resyncs
  ``LOW_PRIORITY``, so that after a start or a failover a key from a watch event (a new
  object) does not wait behind every object of the cluster. Adding an item that is already
  waiting keeps the higher of the two priorities and its place among items of that priority
  (the order of its first add); with every priority equal, this is client-go's FIFO queue.
- Stingy: an item is never handed to two workers at once, and adding an item that is already
  waiting to be processed merges with it.
- An item added while it is being processed is marked dirty, and ``done`` queues it again
  (with the highest priority it was added with meanwhile).
- Shutdown: ``add`` and ``add_after`` are then ignored and delayed items are dropped; ``get``
  keeps handing out the items already queued and, once the queue is empty, returns
  ``(None, True)``. ``shut_down_with_drain`` also waits until every item handed out is done.

Items must be hashable and not ``None`` (``get`` returns ``None`` with the shutdown flag).

Threads: every method may be called from any thread; ``get`` and ``shut_down_with_drain`` block
the caller. A ``DelayingQueue`` owns one daemon timer thread, ``workqueue-<name>-timer``, that
moves items whose delay has passed into the queue; the constructor starts it and ``shut_down``
or ``shut_down_with_drain`` stop and join it, so every such queue must be shut down.

Locking: one ``threading.Lock`` per queue with named ``Condition``s on it, as in CPython's
``Lib/queue.py``. The ``QueueMetrics`` hooks are called with that lock held: they must be cheap
and must not call back into the queue.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections.abc import Hashable
from typing import Generic, Literal, Protocol, TypeVar

from informers.clock import Clock
from informers.ratelimit import RateLimiter

T = TypeVar("T", bound=Hashable)

NORMAL_PRIORITY = 0
LOW_PRIORITY = -100  # controller-runtime's handler.LowPriority: initial list and resyncs


class QueueMetrics(Protocol):
    """Metric hooks of one queue, with the semantics of client-go's queue metrics.

    An exporter maps them to ``workqueue_depth`` (+1 on ``add``, -1 on ``get``),
    ``workqueue_adds_total`` (``add``), ``workqueue_queue_duration_seconds`` (``get``),
    ``workqueue_work_duration_seconds`` (``done``), ``workqueue_retries_total`` (``retry``),
    ``workqueue_unfinished_work_seconds`` and ``workqueue_longest_running_processor_seconds``
    (``set_unfinished_work``, called by ``WorkQueue.update_unfinished_work`` which the exporter
    calls periodically or on scrape). Called with the queue's lock held: keep them cheap.
    """

    def add(self) -> None:
        """An item became dirty (was added and not already waiting): adds += 1, depth += 1."""
        ...

    def get(self, queued_seconds: float) -> None:
        """An item was handed to a worker after waiting ``queued_seconds``: depth -= 1."""
        ...

    def done(self, work_seconds: float) -> None:
        """A worker finished an item it held for ``work_seconds``."""
        ...

    def retry(self) -> None:
        """An item was added with ``add_after`` (this includes rate-limited adds)."""
        ...

    def set_unfinished_work(
        self, *, unfinished_seconds: float, longest_running_seconds: float
    ) -> None:
        """Set the summed and the largest age of the items being processed now."""
        ...


class NoopQueueMetrics:
    """Metric hooks that record nothing (the default)."""

    def add(self) -> None:
        """Record nothing."""

    def get(self, queued_seconds: float) -> None:
        """Record nothing."""

    def done(self, work_seconds: float) -> None:
        """Record nothing."""

    def retry(self) -> None:
        """Record nothing."""

    def set_unfinished_work(
        self, *, unfinished_seconds: float, longest_running_seconds: float
    ) -> None:
        """Record nothing."""


class RecordingQueueMetrics:
    """Metric hooks that keep the values in memory, for tests and simple exporters.

    The attributes are written under the owning queue's lock; read them when the queue is idle.
    """

    def __init__(self) -> None:
        self.depth = 0
        self.adds = 0
        self.retries = 0
        self.queue_durations: list[float] = []
        self.work_durations: list[float] = []
        self.unfinished_work_seconds = 0.0
        self.longest_running_processor_seconds = 0.0

    def add(self) -> None:
        """Count an add and raise the depth."""
        self.adds += 1
        self.depth += 1

    def get(self, queued_seconds: float) -> None:
        """Lower the depth and record the time spent queued."""
        self.depth -= 1
        self.queue_durations.append(queued_seconds)

    def done(self, work_seconds: float) -> None:
        """Record the processing time."""
        self.work_durations.append(work_seconds)

    def retry(self) -> None:
        """Count a retry."""
        self.retries += 1

    def set_unfinished_work(
        self, *, unfinished_seconds: float, longest_running_seconds: float
    ) -> None:
        """Keep the latest values."""
        self.unfinished_work_seconds = unfinished_seconds
        self.longest_running_processor_seconds = longest_running_seconds


class WorkQueue(Generic[T]):
    """A fair, stingy priority work queue; see the module docstring for the contract.

    Invariants, under ``_mutex``: every item of ``_queued`` is dirty and not being processed,
    and has exactly one live entry in the heap ``_heap`` (``_queued[item]`` names it; other
    entries of that item are stale and dropped when they reach the top); every dirty item is
    either queued or being processed; ``_priority`` holds the priority of every dirty item.
    """

    def __init__(self, *, name: str, clock: Clock, metrics: QueueMetrics | None = None) -> None:
        self.name = name
        self._clock = clock
        self._metrics: QueueMetrics = metrics if metrics is not None else NoopQueueMetrics()
        self._mutex = threading.Lock()
        # Notified when an item is queued or the queue shuts down; get() waits on it.
        self._not_empty = threading.Condition(self._mutex)
        # Notified when nothing is being processed any more or the queue shuts down;
        # shut_down_with_drain() waits on it.
        self._all_done = threading.Condition(self._mutex)
        # guarded by _mutex; the order of work: (-priority, sequence, item), may hold stale
        # entries (see the class invariants)
        self._heap: list[tuple[int, int, T]] = []
        self._queued: dict[T, tuple[int, int]] = {}  # guarded by _mutex; live heap entries
        self._sequence = itertools.count()  # guarded by _mutex; FIFO order within a priority
        # guarded by _mutex; the dirty set: items to process, with the time each became dirty.
        self._dirty: dict[T, float] = {}
        self._priority: dict[T, int] = {}  # guarded by _mutex; priority of each dirty item
        # guarded by _mutex; the processing set: items handed out, with the time of hand-out.
        self._processing: dict[T, float] = {}
        self._shutting_down = False  # guarded by _mutex
        self._drain = False  # guarded by _mutex; cleared by shut_down() to stop a drain

    def add(self, item: T, *, priority: int = NORMAL_PRIORITY) -> None:
        """Mark ``item`` as needing processing; ignored once the queue is shutting down."""
        if item is None:
            raise ValueError("None cannot be queued: get() returns it on shutdown")
        with self._mutex:
            self._add_locked(item, priority)

    def get(self) -> tuple[T, Literal[False]] | tuple[None, Literal[True]]:
        """Block until an item is available and return ``(item, False)``.

        Returns ``(None, True)`` once the queue is shutting down and empty. The caller must
        call ``done(item)`` when it has finished with the item.
        """
        item, _, shutdown = self.get_with_priority()
        if shutdown or item is None:
            return None, True
        return item, False

    def get_with_priority(self) -> tuple[T | None, int, bool]:
        """Like :meth:`get`, with the item's priority: ``(item, priority, shutdown)``.

        A worker that queues the item again (a retry) passes that priority back.
        """
        with self._mutex:
            while not self._queued and not self._shutting_down:
                self._not_empty.wait()
            if not self._queued:
                return None, NORMAL_PRIORITY, True
            item = self._pop_locked()
            now = self._clock.now()
            self._metrics.get(now - self._dirty.pop(item))
            priority = self._priority.pop(item)
            self._processing[item] = now
            return item, priority, False

    def done(self, item: T) -> None:
        """Mark ``item`` as processed; if it was added meanwhile, queue it again.

        A no-op for an item that is not being processed.
        """
        with self._mutex:
            started = self._processing.pop(item, None)
            if started is None:
                return
            self._metrics.done(self._clock.now() - started)
            if item in self._dirty:
                self._push_locked(item, next(self._sequence))
                self._not_empty.notify()
            if not self._processing:
                self._all_done.notify_all()

    def __len__(self) -> int:
        """Return the number of items waiting to be handed out (not those being processed)."""
        with self._mutex:
            return len(self._queued)

    def shut_down(self) -> None:
        """Stop accepting items and wake every blocked ``get``; cancels a pending drain."""
        with self._mutex:
            self._shut_down_locked(drain=False)
        self._after_shut_down()

    def shut_down_with_drain(self, timeout: float | None = None) -> bool:
        """Shut down, then wait until every item handed out by ``get`` is ``done``.

        ``timeout`` (seconds on the queue's clock; ``None``: no limit) bounds the wait. Returns
        True if nothing is being processed any more, False on timeout or when a concurrent
        ``shut_down()`` cancelled the drain. Workers must keep calling ``done``, or, without a
        timeout, this blocks forever.
        """
        with self._mutex:
            self._shut_down_locked(drain=True)
            deadline = None if timeout is None else self._clock.now() + timeout
            while self._processing and self._drain:
                if deadline is None:
                    self._all_done.wait()
                elif self._clock.now() >= deadline:
                    break
                else:
                    self._clock.wait_until(self._all_done, deadline)
            drained = not self._processing
        self._after_shut_down()
        return drained

    def shutting_down(self) -> bool:
        """Return whether ``shut_down`` or ``shut_down_with_drain`` has been called."""
        with self._mutex:
            return self._shutting_down

    def update_unfinished_work(self) -> None:
        """Report the age of the items being processed to ``QueueMetrics.set_unfinished_work``.

        For the metrics exporter, which calls it periodically (client-go: every 500 ms).
        """
        with self._mutex:
            now = self._clock.now()
            ages = [now - started for started in self._processing.values()]
            self._metrics.set_unfinished_work(
                unfinished_seconds=sum(ages), longest_running_seconds=max(ages, default=0.0)
            )

    def _add_locked(self, item: T, priority: int) -> None:
        """Add ``item`` with ``priority``; the caller holds ``_mutex``."""
        if self._shutting_down:
            return
        if item in self._dirty:
            if priority <= self._priority[item]:
                return
            self._priority[item] = priority  # merged: keep the higher priority
            live = self._queued.get(item)
            if live is not None:  # waiting: move it up, keeping its place in the order
                self._push_locked(item, live[1])
            return
        self._metrics.add()
        self._dirty[item] = self._clock.now()
        self._priority[item] = priority
        if item in self._processing:
            return
        self._push_locked(item, next(self._sequence))
        self._not_empty.notify()

    def _push_locked(self, item: T, sequence: int) -> None:
        """Make ``(priority, sequence)`` the live heap entry of the dirty ``item``."""
        entry = (-self._priority[item], sequence)
        self._queued[item] = entry
        heapq.heappush(self._heap, (*entry, item))

    def _pop_locked(self) -> T:
        """Remove and return the first queued item, dropping stale entries on the way."""
        while True:
            neg_priority, sequence, item = heapq.heappop(self._heap)
            if self._queued.get(item) == (neg_priority, sequence):
                del self._queued[item]
                return item

    def _shut_down_locked(self, *, drain: bool) -> None:
        """Enter shutdown; the caller holds ``_mutex``. Subclasses extend it."""
        self._shutting_down = True
        self._drain = drain
        self._not_empty.notify_all()
        self._all_done.notify_all()

    def _after_shut_down(self) -> None:
        """Finish shutting down without ``_mutex`` held (e.g. join threads)."""


class DelayingQueue(WorkQueue[T]):
    """A ``WorkQueue`` that can also add an item after a delay, using one timer thread.

    Invariants, under ``_mutex``: ``_ready_at`` maps each waiting item to its one live entry in
    the heap ``_waiting``; other heap entries for that item are stale and are dropped when they
    reach the top. An item that is already waiting keeps the earlier of its two ready times
    and the higher of its two priorities (``_waiting_priority``).
    """

    def __init__(self, *, name: str, clock: Clock, metrics: QueueMetrics | None = None) -> None:
        super().__init__(name=name, clock=clock, metrics=metrics)
        # Notified when the earliest ready time may have changed or the timer must stop;
        # the timer thread waits on it through the clock.
        self._waiting_changed = threading.Condition(self._mutex)
        # guarded by _mutex; heap of (ready_at, sequence number, item), may hold stale entries
        self._waiting: list[tuple[float, int, T]] = []
        self._ready_at: dict[T, float] = {}  # guarded by _mutex; see the class invariants
        self._waiting_priority: dict[T, int] = {}  # guarded by _mutex; of each waiting item
        self._stop = threading.Event()  # set under _mutex when the timer thread must exit
        self._timer = threading.Thread(
            target=self._run_timer, name=f"workqueue-{name}-timer", daemon=True
        )
        self._timer.start()

    def add_after(self, item: T, delay: float, *, priority: int = NORMAL_PRIORITY) -> None:
        """Add ``item`` once ``delay`` seconds have passed on the clock (now if ``delay <= 0``).

        Ignored once the queue is shutting down.
        """
        if item is None:
            raise ValueError("None cannot be queued: get() returns it on shutdown")
        with self._mutex:
            if self._shutting_down:
                return
            self._metrics.retry()
            if delay <= 0:
                self._add_locked(item, priority)
                return
            ready_at = self._clock.now() + delay
            self._waiting_priority[item] = max(priority, self._waiting_priority.get(item, priority))
            current = self._ready_at.get(item)
            if current is not None and current <= ready_at:
                return
            self._ready_at[item] = ready_at
            heapq.heappush(self._waiting, (ready_at, next(self._sequence), item))
            self._waiting_changed.notify()

    def _run_timer(self) -> None:
        """Body of the timer thread: add items as they become ready until stopped."""
        with self._mutex:
            while not self._stop.is_set():
                self._add_ready_locked(self._clock.now())
                next_ready = self._waiting[0][0] if self._waiting else None
                self._clock.wait_until(self._waiting_changed, next_ready)

    def _add_ready_locked(self, now: float) -> None:
        """Add the items ready at ``now`` and drop stale heap entries from the top."""
        while self._waiting:
            ready_at, _, item = self._waiting[0]
            if self._ready_at.get(item) != ready_at:
                heapq.heappop(self._waiting)
            elif ready_at <= now:
                heapq.heappop(self._waiting)
                del self._ready_at[item]
                self._add_locked(item, self._waiting_priority.pop(item))
            else:
                return

    def _shut_down_locked(self, *, drain: bool) -> None:
        """Enter shutdown, drop the waiting items and tell the timer thread to exit."""
        super()._shut_down_locked(drain=drain)
        self._stop.set()
        self._waiting.clear()
        self._ready_at.clear()
        self._waiting_priority.clear()
        self._waiting_changed.notify_all()

    def _after_shut_down(self) -> None:
        """Join the timer thread."""
        super()._after_shut_down()
        if threading.current_thread() is not self._timer:
            self._timer.join()


class RateLimitingQueue(DelayingQueue[T]):
    """A ``DelayingQueue`` that delays retries as its ``RateLimiter`` decides.

    The usual worker loop: ``get``; on success ``forget``; on a transient failure
    ``add_rate_limited``; always ``done`` in ``finally``.
    """

    def __init__(
        self,
        *,
        name: str,
        clock: Clock,
        rate_limiter: RateLimiter,
        metrics: QueueMetrics | None = None,
    ) -> None:
        super().__init__(name=name, clock=clock, metrics=metrics)
        self._rate_limiter = rate_limiter

    def add_rate_limited(self, item: T, *, priority: int = NORMAL_PRIORITY) -> None:
        """Add ``item`` after the delay the rate limiter gives for this retry."""
        self.add_after(item, self._rate_limiter.when(item), priority=priority)

    def forget(self, item: T) -> None:
        """Clear the retry history of ``item`` (it does not remove the item from the queue)."""
        self._rate_limiter.forget(item)

    def num_requeues(self, item: T) -> int:
        """Return how many times ``item`` was rate-limited since it was last forgotten."""
        return self._rate_limiter.num_requeues(item)
