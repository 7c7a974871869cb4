"""Shared informer: a reflector, an indexed cache and event handlers, each on its own thread.

Threads (all named after the informer, all stopped by :meth:`SharedInformer.stop` and joined by
:meth:`SharedInformer.join`):

- ``<name>-reflector`` lists and watches, updates the cache, and queues notifications;
- ``<name>-handler-<n>``, one per registered handler, delivers them in order. Each handler
  has an unbounded buffer, so a slow handler never blocks the watch or the other handlers;
- ``<name>-resync`` (only with a resync period) replays the cache as updates, with no API call.

With ``daemon=True`` every thread is a daemon thread: an informer embedded in someone else's
process (a library) never keeps that process from exiting, stopped or not.

Handlers get frozen objects (see :mod:`informers.frozen`) and must return promptly (typically
they only enqueue a key). ``on_add`` says whether the object came with the informer's initial
list (client-go's ``isInInitialList``: the first list, and the cache replayed to a handler
registered later) rather than from a watch event or a later relist, so that a controller can
give those keys a low priority. A resync arrives as an update whose old and new objects are the
same (equal resourceVersions). ``on_delete`` may receive a :class:`DeletedFinalStateUnknown` when a
relist, not a watch event, revealed the deletion. An update whose resourceVersion did not change
(from a relist) is not delivered, except by resync.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from informers.backoff import JitteredBackoff
from informers.clock import Clock, RealClock
from informers.reflector import (
    DEFAULT_READ_TIMEOUT_SECONDS,
    Reflector,
    ReflectorStats,
    Transform,
)
from informers.resource import ListerWatcher, Object
from informers.store import DeletedFinalStateUnknown, Indexer, IndexFunc, KeyFunc, Obj, object_key

log = logging.getLogger(__name__)

JOIN_TIMEOUT_SECONDS = 10.0


class EventHandler(Protocol):
    """Receives cache changes on the handler's own thread."""

    def on_add(self, obj: Obj, is_in_initial_list: bool) -> None: ...

    def on_update(self, old: Obj, new: Obj) -> None: ...

    def on_delete(self, obj: Obj | DeletedFinalStateUnknown) -> None: ...


@dataclass(frozen=True)
class FuncHandler:
    """An :class:`EventHandler` built from optional functions."""

    add: Callable[[Obj, bool], None] | None = None  # (object, is_in_initial_list)
    update: Callable[[Obj, Obj], None] | None = None
    delete: Callable[[Obj | DeletedFinalStateUnknown], None] | None = None

    def on_add(self, obj: Obj, is_in_initial_list: bool) -> None:
        if self.add is not None:
            self.add(obj, is_in_initial_list)

    def on_update(self, old: Obj, new: Obj) -> None:
        if self.update is not None:
            self.update(old, new)

    def on_delete(self, obj: Obj | DeletedFinalStateUnknown) -> None:
        if self.delete is not None:
            self.delete(obj)


@dataclass(frozen=True)
class _Notification:
    kind: str  # "add", "update" or "delete"
    old: Obj | DeletedFinalStateUnknown | None
    new: Obj | DeletedFinalStateUnknown
    initial: bool = False  # an add from the initial list


class _Listener:
    """Delivers notifications to one handler from an unbounded FIFO, on its own thread."""

    def __init__(self, handler: EventHandler, name: str) -> None:
        self.handler = handler
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._pending: collections.deque[_Notification] = collections.deque()  # guarded by _lock
        self._stopped = False  # guarded by _lock
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def push(self, notification: _Notification) -> None:
        with self._lock:
            self._pending.append(notification)
            self._not_empty.notify()

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            self._not_empty.notify()

    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._pending and not self._stopped:
                    self._not_empty.wait()
                if self._stopped:
                    return
                notification = self._pending.popleft()
            self._deliver(notification)

    def _deliver(self, n: _Notification) -> None:
        try:
            if n.kind == "add":
                assert not isinstance(n.new, DeletedFinalStateUnknown)
                self.handler.on_add(n.new, n.initial)
            elif n.kind == "update":
                assert n.old is not None
                assert not isinstance(n.old, DeletedFinalStateUnknown)
                assert not isinstance(n.new, DeletedFinalStateUnknown)
                self.handler.on_update(n.old, n.new)
            else:
                self.handler.on_delete(n.new)
        except Exception:
            log.exception("event handler %s failed on %s", self.thread.name, n.kind)


class SharedInformer:
    """A cache of one collection, kept current by list+watch, with change notifications."""

    def __init__(
        self,
        *,
        name: str,
        lister_watcher: ListerWatcher,
        indexers: Mapping[str, IndexFunc] | None = None,
        key_func: KeyFunc = object_key,
        transform: Transform | None = None,
        resync_period: float = 0.0,
        read_timeout: float = DEFAULT_READ_TIMEOUT_SECONDS,
        backoff: JitteredBackoff | None = None,
        clock: Clock | None = None,
        daemon: bool = False,
    ) -> None:
        self.name = name
        self._daemon = daemon
        self.indexer = Indexer(key_func=key_func, indexers=indexers)
        self._clock = clock or RealClock()
        self._resync_period = resync_period
        self.reflector = Reflector(
            name=name,
            lister_watcher=lister_watcher,
            sink=self,
            transform=transform,
            clock=self._clock,
            read_timeout=read_timeout,
            backoff=backoff,
        )
        # Serialises cache updates with notification dispatch and resync snapshots, so every
        # handler sees the changes in cache order.
        self._dispatch_lock = threading.Lock()
        self._listeners: list[_Listener] = []  # guarded by _dispatch_lock
        self._synced = threading.Event()
        self._started = False
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # -------------------------------------------------------------- handlers
    def add_event_handler(self, handler: EventHandler) -> None:
        """Register ``handler``; if the informer runs, it first gets the cache as adds."""
        with self._dispatch_lock:
            listener = _Listener(handler, f"{self.name}-handler-{len(self._listeners)}")
            for obj in self.indexer.list():
                listener.push(_Notification("add", None, obj, initial=True))
            self._listeners.append(listener)
            if self._started:
                listener.thread.start()

    # ------------------------------------------------------------- lifecycle
    def start(self) -> None:
        """Start the threads; returns at once. Use :meth:`wait_for_sync` to wait for the cache."""
        with self._dispatch_lock:
            if self._started:
                raise RuntimeError(f"informer {self.name} already started")
            self._started = True
            for listener in self._listeners:
                listener.thread.start()
        reflector = threading.Thread(
            target=self.reflector.run, name=f"{self.name}-reflector", daemon=self._daemon
        )
        self._threads.append(reflector)
        if self._resync_period > 0:
            self._threads.append(
                threading.Thread(
                    target=self._resync, name=f"{self.name}-resync", daemon=self._daemon
                )
            )
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Stop watching and delivering; safe from any thread. Call :meth:`join` to wait."""
        self._stop.set()
        self.reflector.stop()
        with self._dispatch_lock:
            for listener in self._listeners:
                listener.stop()

    def join(self, timeout: float = JOIN_TIMEOUT_SECONDS) -> None:
        with self._dispatch_lock:
            threads = self._threads + [lst.thread for lst in self._listeners]
        for thread in threads:
            if thread.ident is not None:
                thread.join(timeout)

    def has_synced(self) -> bool:
        """True once the first list has been stored in the cache."""
        return self._synced.is_set()

    def wait_for_sync(self, timeout: float | None = None) -> bool:
        return self._synced.wait(timeout)

    def wait_for_watch(self, timeout: float | None = None) -> bool:
        """Block until a watch has been opened once (after the first list): the cache follows
        changes as they happen. False after ``timeout``: e.g. the list is allowed and the
        watch is not, so the cache is only refreshed by relisting."""
        return self.reflector.watching.wait(timeout)

    def threads_alive(self) -> bool:
        """False when a thread of this running informer has died."""
        with self._dispatch_lock:
            threads = self._threads + [lst.thread for lst in self._listeners]
        return self._stop.is_set() or all(t.is_alive() for t in threads if t.ident is not None)

    @property
    def stats(self) -> ReflectorStats:
        return self.reflector.stats

    def pending_notifications(self) -> int:
        with self._dispatch_lock:
            return sum(listener.pending() for listener in self._listeners)

    # ----------------------------------------------- WatchSink (reflector thread)
    def replace(self, objects: list[Object], resource_version: str) -> None:
        with self._dispatch_lock:
            initial = not self._synced.is_set()
            old, new = self.indexer.replace(objects)
            for key, obj in new.items():
                before = old.get(key)
                if before is None:
                    self._notify(_Notification("add", None, obj, initial=initial))
                elif _resource_version(before) != _resource_version(obj):
                    self._notify(_Notification("update", before, obj))
            for key, gone in old.items():
                if key not in new:
                    self._notify(_Notification("delete", None, DeletedFinalStateUnknown(key, gone)))
        self._synced.set()

    def add(self, obj: Object) -> None:
        self._upsert(obj)

    def update(self, obj: Object) -> None:
        self._upsert(obj)

    def delete(self, obj: Object) -> None:
        with self._dispatch_lock:
            self.indexer.remove(self.indexer.key_func(obj))
            self._notify(_Notification("delete", None, obj))

    def _upsert(self, obj: Object) -> None:
        with self._dispatch_lock:
            old = self.indexer.upsert(obj)
            if old is None:
                self._notify(_Notification("add", None, obj))
            else:
                self._notify(_Notification("update", old, obj))

    def _notify(self, notification: _Notification) -> None:
        for listener in self._listeners:
            listener.push(notification)

    # ------------------------------------------------------------------ resync
    def _resync(self) -> None:
        while not self._stop.wait(self._resync_period):
            if not self.has_synced():
                continue
            with self._dispatch_lock:
                for obj in self.indexer.list():
                    self._notify(_Notification("update", obj, obj))


def _resource_version(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")
