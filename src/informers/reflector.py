"""The reflector: keeps a sink in step with one API collection by LIST, then WATCH.

Lifecycle of a watch (after client-go's ``reflector.go``):

1. LIST in pages of ``page_size`` (default 500). The first list is a consistent read; a relist
   asks for "not older than" the last resourceVersion seen, and falls back to a consistent
   read when the server says that version is gone (410) or too large.
2. ``sink.replace(objects, rv)`` with the whole collection.
3. WATCH from that resourceVersion with bookmarks, a random server-side timeout of
   5–10 minutes and a client read timeout longer than the bookmark interval, so a silently
   stalled stream is detected. Each event goes to ``sink.add/update/delete``; bookmarks only
   advance the resourceVersion.
4. The server ended the watch → watch again from the last resourceVersion. Connection errors
   and read timeouts → jittered backoff, then watch again (no relist). ``429`` → wait
   ``Retry-After``, watch again. ``410 Gone`` → relist. Anything else → backoff, relist.

Every object passes through ``transform`` (e.g. dropping ``managedFields``) and is frozen
before the sink sees it. The reflector runs on one thread (``run``); ``stop()`` may be called
from any thread and interrupts a blocked watch read at once.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import tenacity

from informers.backoff import JitteredBackoff
from informers.client import WatchStream
from informers.clock import Clock, RealClock
from informers.errors import ApiError, ConnectionFailed, Gone, TooManyRequests
from informers.frozen import freeze
from informers.resource import ListerWatcher, Object

log = logging.getLogger(__name__)

Transform = Callable[[Object], Object]

DEFAULT_PAGE_SIZE = 500
# The API server sends a bookmark to each watcher at least once a minute.
DEFAULT_READ_TIMEOUT_SECONDS = 100.0
DEFAULT_WATCH_TIMEOUT_RANGE = (300, 600)
DEFAULT_RETRY_AFTER_SECONDS = 1.0


class WatchSink(Protocol):
    """Receives the reflector's view of the collection; called on the reflector thread."""

    def replace(self, objects: list[Object], resource_version: str) -> None: ...

    def add(self, obj: Object) -> None: ...

    def update(self, obj: Object) -> None: ...

    def delete(self, obj: Object) -> None: ...


class _WatchExpired(Exception):
    """The watch's resourceVersion is gone: relist."""


@dataclass
class ReflectorStats:
    """Counters for health and metrics; written by the reflector thread only."""

    lists: int = 0
    relists: int = 0
    watches: int = 0
    watch_restarts: int = 0
    watch_errors: int = 0
    events: int = 0
    bookmarks: int = 0
    last_progress: float = 0.0


class Reflector:
    """Mirrors one collection (``lister_watcher``) into ``sink`` until stopped."""

    def __init__(
        self,
        *,
        name: str,
        lister_watcher: ListerWatcher,
        sink: WatchSink,
        transform: Transform | None = None,
        clock: Clock | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
        read_timeout: float = DEFAULT_READ_TIMEOUT_SECONDS,
        watch_timeout_range: tuple[int, int] = DEFAULT_WATCH_TIMEOUT_RANGE,
        backoff: JitteredBackoff | None = None,
        rand: random.Random | None = None,
    ) -> None:
        self.name = name
        self._lw = lister_watcher
        self._sink = sink
        self._transform = transform
        self._clock = clock or RealClock()
        self._page_size = page_size
        self._read_timeout = read_timeout
        self._watch_timeout_range = watch_timeout_range
        self._backoff = backoff or JitteredBackoff(clock=self._clock)
        self._rand = rand or random.Random()
        self._stop = threading.Event()
        self._stream_lock = threading.Lock()
        self._stream: WatchStream | None = None  # guarded by _stream_lock
        # Written by the reflector thread only; read anywhere (str assignment is atomic).
        self.last_sync_resource_version = ""
        self._rv_unavailable = False
        self._listed_once = False
        self.stats = ReflectorStats()
        # Set once a watch stream has been opened (the collection is followed, not only
        # listed): a caller can tell "synced" from "synced and watching".
        self.watching = threading.Event()

    # -------------------------------------------------------------- lifecycle
    def run(self) -> None:
        """List and watch until :meth:`stop`; errors are retried with backoff."""
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(Exception),
            stop=tenacity.stop_when_event_set(self._stop),
            wait=self._backoff,
            sleep=self._sleep,
            before_sleep=self._log_retry,
            reraise=False,
        )
        try:
            for attempt in retrying:
                with attempt:
                    self._list_and_watch()
        except tenacity.RetryError:
            pass  # stopped while failing
        log.debug("reflector %s stopped", self.name)

    def stop(self) -> None:
        """Ask ``run`` to return; interrupts a blocked watch read. Any thread, idempotent."""
        self._stop.set()
        with self._stream_lock:
            stream = self._stream
        if stream is not None:
            stream.close()

    def _sleep(self, seconds: float) -> None:
        self._stop.wait(seconds)

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    # --------------------------------------------------------------- listing
    def _list_and_watch(self) -> None:
        if self._stop.is_set():
            # tenacity starts the next attempt even when stop() cut its sleep short; do not
            # send another LIST (which may block on an unreachable server) after stop().
            return
        self._list()
        while not self._stop.is_set():
            try:
                self._watch_once()
            except Gone as err:
                raise _WatchExpired(err.message) from err
            except TooManyRequests as err:
                delay = err.retry_after or DEFAULT_RETRY_AFTER_SECONDS
                log.info("reflector %s: watch throttled, retrying in %.1f s", self.name, delay)
                self._stop.wait(delay)
            except ConnectionFailed as err:
                self.stats.watch_errors += 1
                delay = self._backoff.next_delay()
                log.warning(
                    "reflector %s: watch failed (%s); watching again in %.1f s",
                    self.name,
                    err,
                    delay,
                )
                self._stop.wait(delay)

    def _list(self) -> None:
        resource_version = self._relist_resource_version()
        try:
            objects, list_rv = self._list_pages(resource_version)
        except Gone:
            if resource_version == "":
                raise
            log.info(
                "reflector %s: resourceVersion %s is gone; consistent relist",
                self.name,
                resource_version,
            )
            self._rv_unavailable = True
            objects, list_rv = self._list_pages("")
        except ApiError as err:
            if resource_version and "too large resource version" in err.message.lower():
                self._rv_unavailable = True
            raise
        self._rv_unavailable = False
        self._sink.replace(objects, list_rv)
        self.last_sync_resource_version = list_rv
        if self._listed_once:
            self.stats.relists += 1
        self._listed_once = True
        self.stats.lists += 1
        self.stats.last_progress = self._clock.now()
        log.debug("reflector %s: listed %d objects at %s", self.name, len(objects), list_rv)

    def _relist_resource_version(self) -> str:
        if not self._listed_once or self._rv_unavailable:
            return ""  # consistent read
        return self.last_sync_resource_version

    def _list_pages(self, resource_version: str) -> tuple[list[Object], str]:
        objects: list[Object] = []
        continue_token = ""
        list_rv = ""
        while True:
            page = self._lw.list(
                limit=self._page_size,
                continue_token=continue_token,
                resource_version=resource_version,
            )
            metadata = page.get("metadata") or {}
            if not list_rv:
                list_rv = str(metadata.get("resourceVersion") or "")
            kind = str(page.get("kind") or "").removesuffix("List")
            api_version = page.get("apiVersion")
            for item in page.get("items") or ():
                if kind:
                    item.setdefault("kind", kind)
                if api_version:
                    item.setdefault("apiVersion", api_version)
                objects.append(self._prepare(item))
            continue_token = str(metadata.get("continue") or "")
            if not continue_token:
                return objects, list_rv

    # -------------------------------------------------------------- watching
    def _watch_once(self) -> None:
        timeout = self._rand.randint(*self._watch_timeout_range)
        stream = self._lw.watch(
            resource_version=self.last_sync_resource_version,
            timeout_seconds=timeout,
            read_timeout=self._read_timeout,
        )
        with self._stream_lock:
            if self._stop.is_set():
                stream.close()
                return
            self._stream = stream
        if self.stats.watches:
            self.stats.watch_restarts += 1
        self.stats.watches += 1
        self.watching.set()
        self.stats.last_progress = self._clock.now()
        started = self._clock.now()
        received = 0
        try:
            for event in stream:
                received += 1
                self._handle(event.type, event.object)
                if self._stop.is_set():
                    return
        finally:
            with self._stream_lock:
                self._stream = None
            stream.close()
        if received == 0 and self._clock.now() - started < 1.0 and not self._stop.is_set():
            # A watch that the server ends at once would otherwise be reopened in a hot loop.
            raise ConnectionFailed("watch closed by the server immediately without events")

    def _handle(self, event_type: str, obj: Object) -> None:
        self.stats.last_progress = self._clock.now()
        if event_type == "ERROR":
            self._handle_error(obj)
            return
        resource_version = str((obj.get("metadata") or {}).get("resourceVersion") or "")
        if event_type == "BOOKMARK":
            self.stats.bookmarks += 1
        else:
            self.stats.events += 1
            prepared = self._prepare(obj)
            if event_type == "ADDED":
                self._sink.add(prepared)
            elif event_type == "MODIFIED":
                self._sink.update(prepared)
            elif event_type == "DELETED":
                self._sink.delete(prepared)
            else:
                log.warning("reflector %s: unknown watch event type %r", self.name, event_type)
                return
        if resource_version:
            self.last_sync_resource_version = resource_version

    def _handle_error(self, status: Object) -> None:
        code = status.get("code")
        message = str(status.get("message") or "")[:200]
        if code == 410:
            log.info("reflector %s: watch expired (%s); relisting", self.name, message)
            raise _WatchExpired(message)
        raise ApiError(f"watch error {code}: {message}", status=int(code or 500))

    def _prepare(self, obj: Object) -> Any:
        if self._transform is not None:
            obj = self._transform(obj)
        return freeze(obj)

    def _log_retry(self, retry_state: tenacity.RetryCallState) -> None:
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None else None
        wait = retry_state.next_action.sleep if retry_state.next_action else 0.0
        if isinstance(error, _WatchExpired):
            log.info("reflector %s: relisting in %.1f s", self.name, wait)
        else:
            log.warning(
                "reflector %s: list and watch failed (%s); retrying in %.1f s",
                self.name,
                error,
                wait,
            )
