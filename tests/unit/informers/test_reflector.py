"""Unit tests of ``informers.reflector.Reflector`` against an in-memory lister-watcher.

The reflector runs on its own thread, as in production. ``FakeListerWatcher`` serves pages
like the API server and hands out ``FakeWatch`` streams that the test feeds event by event;
the test waits for the reflector's reactions with ``eventually`` (never a fixed sleep).
Backoff is tiny (10-50 ms), so failure paths cost milliseconds.
"""

from __future__ import annotations

import collections
import copy
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from eventually import eventually
from fakewatch import FakeWatch
from informers.backoff import JitteredBackoff
from informers.clock import FakeClock
from informers.errors import (
    ApiError,
    ConnectionFailed,
    Forbidden,
    Gone,
    ServerError,
    TooManyRequests,
)
from informers.frozen import FrozenDict, FrozenList
from informers.reflector import Reflector
from informers.resource import Object

TIMEOUT = 5.0  # real seconds any single wait may take
POLL = 0.002
INITIAL_RV = "100"


def cm(name: str, rv: str, **extra: Any) -> Object:
    """A ConfigMap as listed (no kind/apiVersion: the API server leaves them out of items)."""
    return {"metadata": {"name": name, "namespace": "ns", "resourceVersion": rv}, **extra}


def wait(probe: Callable[[], Any], message: str) -> Any:
    return eventually(probe, timeout=TIMEOUT, interval=POLL, message=message)


# ------------------------------------------------------------------------------ fakes
@dataclass(frozen=True)
class ListCall:
    limit: int
    continue_token: str
    resource_version: str


@dataclass(frozen=True)
class WatchCall:
    resource_version: str
    timeout_seconds: int
    read_timeout: float
    at: float  # time.monotonic() of the call


class FakeListerWatcher:
    """A collection served like the API server: pages of ``limit`` with opaque continue
    tokens, and watches fed by the test. Errors queued in ``list_errors``/``watch_errors``
    are raised by the next calls. Every call is recorded."""

    def __init__(self, objects: list[Object], resource_version: str = INITIAL_RV) -> None:
        self._lock = threading.Lock()
        self._objects = objects  # guarded by _lock
        self._resource_version = resource_version  # guarded by _lock
        self.list_errors: collections.deque[Exception] = collections.deque()
        self.watch_errors: collections.deque[Exception] = collections.deque()
        self.list_calls: list[ListCall] = []
        self.watch_calls: list[WatchCall] = []
        self.streams: list[FakeWatch] = []

    def set_collection(self, objects: list[Object], resource_version: str) -> None:
        with self._lock:
            self._objects = objects
            self._resource_version = resource_version

    def list(self, *, limit: int, continue_token: str, resource_version: str) -> Object:
        with self._lock:
            self.list_calls.append(ListCall(limit, continue_token, resource_version))
            if self.list_errors:
                raise self.list_errors.popleft()
            start = int(continue_token.removeprefix("token-")) if continue_token else 0
            end = start + limit if limit else len(self._objects)
            metadata = {"resourceVersion": self._resource_version}
            if end < len(self._objects):
                metadata["continue"] = f"token-{end}"
            return {
                "kind": "ConfigMapList",
                "apiVersion": "v1",
                "metadata": metadata,
                "items": copy.deepcopy(self._objects[start:end]),
            }

    def watch(
        self, *, resource_version: str, timeout_seconds: int, read_timeout: float
    ) -> FakeWatch:
        with self._lock:
            self.watch_calls.append(
                WatchCall(resource_version, timeout_seconds, read_timeout, time.monotonic())
            )
            if self.watch_errors:
                raise self.watch_errors.popleft()
            stream = FakeWatch()
            self.streams.append(stream)
            return stream

    def describe(self) -> str:
        return "configmaps.v1 (fake)"

    def stream(self, n: int) -> FakeWatch:
        """The ``n``-th watch stream (0-based), once the reflector has opened it."""
        wait(lambda: len(self.streams) > n, f"watch #{n} opened")
        return self.streams[n]

    def list_rvs(self) -> list[str]:
        """The resource_version of each list request that started a list (first pages)."""
        return [c.resource_version for c in self.list_calls if not c.continue_token]


class RecordingSink:
    """A ``WatchSink`` that records calls as ``(verb, name-or-rv, ...)`` tuples."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: list[tuple[str, ...]] = []
        self._objects: list[Object] = []

    def replace(self, objects: list[Object], resource_version: str) -> None:
        with self._lock:
            self._calls.append(("replace", resource_version, str(len(objects))))
            self._objects.extend(objects)

    def add(self, obj: Object) -> None:
        self._record("add", obj)

    def update(self, obj: Object) -> None:
        self._record("update", obj)

    def delete(self, obj: Object) -> None:
        self._record("delete", obj)

    def _record(self, verb: str, obj: Object) -> None:
        with self._lock:
            meta = obj["metadata"]
            self._calls.append((verb, meta["name"], meta["resourceVersion"]))
            self._objects.append(obj)

    def calls(self) -> list[tuple[str, ...]]:
        with self._lock:
            return list(self._calls)

    def objects(self) -> list[Object]:
        with self._lock:
            return list(self._objects)


@dataclass
class Harness:
    lw: FakeListerWatcher
    sink: RecordingSink
    reflector: Reflector
    thread: threading.Thread


@pytest.fixture
def start() -> Iterator[Callable[..., Harness]]:
    """``start(objects, **reflector_kwargs)`` runs a reflector on a thread; stopped after."""
    harnesses: list[Harness] = []

    def _start(
        objects: list[Object] | None = None,
        *,
        lw: FakeListerWatcher | None = None,
        **kwargs: Any,
    ) -> Harness:
        lw = lw or FakeListerWatcher(objects or [])
        sink = RecordingSink()
        clock = FakeClock()
        kwargs.setdefault(
            "backoff", JitteredBackoff(clock=clock, initial=0.01, cap=0.05, rand=lambda: 0.0)
        )
        reflector = Reflector(name="cms", lister_watcher=lw, sink=sink, clock=clock, **kwargs)
        thread = threading.Thread(target=reflector.run, name="cms-reflector", daemon=True)
        harness = Harness(lw, sink, reflector, thread)
        harnesses.append(harness)
        thread.start()
        return harness

    yield _start
    for harness in harnesses:
        harness.reflector.stop()
    for harness in harnesses:
        harness.thread.join(TIMEOUT)
        assert not harness.thread.is_alive(), "reflector did not stop"


# --------------------------------------------------------------------------- listing
@pytest.mark.parametrize(
    ("count", "tokens"),
    [
        pytest.param(0, [""], id="empty"),
        pytest.param(500, [""], id="exactly-one-page"),
        pytest.param(501, ["", "token-500"], id="one-more-than-a-page"),
        pytest.param(1234, ["", "token-500", "token-1000"], id="1234-objects-three-pages"),
    ],
)
def test_first_list_is_paginated_consistent_read(
    start: Callable[..., Harness], count: int, tokens: list[str]
) -> None:
    h = start([cm(f"cm-{i:04}", str(i)) for i in range(count)])

    h.lw.stream(0)

    assert h.lw.list_calls == [ListCall(500, token, "") for token in tokens]
    assert h.sink.calls() == [("replace", INITIAL_RV, str(count))]
    names = [o["metadata"]["name"] for o in h.sink.objects()]
    assert names == [f"cm-{i:04}" for i in range(count)]
    assert h.reflector.last_sync_resource_version == INITIAL_RV
    assert h.reflector.stats.lists == 1
    assert h.reflector.stats.relists == 0


def test_page_size_is_configurable(start: Callable[..., Harness]) -> None:
    h = start([cm(f"cm-{i}", "1") for i in range(5)], page_size=2)

    h.lw.stream(0)

    assert [(c.limit, c.continue_token) for c in h.lw.list_calls] == [
        (2, ""),
        (2, "token-2"),
        (2, "token-4"),
    ]
    assert h.sink.calls() == [("replace", INITIAL_RV, "5")]


def test_watch_starts_from_list_rv_with_timeouts(start: Callable[..., Harness]) -> None:
    h = start([cm("a", "1")], read_timeout=42.0, watch_timeout_range=(7, 9))

    h.lw.stream(0)

    (call,) = h.lw.watch_calls
    assert call.resource_version == INITIAL_RV
    assert 7 <= call.timeout_seconds <= 9
    assert call.read_timeout == 42.0


def test_listed_items_get_kind_and_api_version(start: Callable[..., Harness]) -> None:
    h = start([cm("a", "1"), cm("b", "2", kind="Special", apiVersion="example.com/v1")])

    h.lw.stream(0)

    a, b = h.sink.objects()
    assert (a["kind"], a["apiVersion"]) == ("ConfigMap", "v1")
    assert (b["kind"], b["apiVersion"]) == ("Special", "example.com/v1")


def test_transform_is_applied_and_objects_are_frozen(start: Callable[..., Harness]) -> None:
    def drop_managed_fields(obj: Object) -> Object:
        meta = {k: v for k, v in obj["metadata"].items() if k != "managedFields"}
        return {**obj, "metadata": meta}

    listed, watched = cm("a", "1", data={"k": ["v"]}), cm("b", "101", data={"k": ["v"]})
    for obj in (listed, watched):
        obj["metadata"]["managedFields"] = [{"manager": "kubectl"}]
    h = start([listed], transform=drop_managed_fields)

    h.lw.stream(0).feed("ADDED", watched)
    wait(lambda: len(h.sink.objects()) == 2, "watched object reached the sink")

    for obj in h.sink.objects():
        assert "managedFields" not in obj["metadata"]
        assert isinstance(obj, FrozenDict)
        assert isinstance(obj["metadata"], FrozenDict)
        assert isinstance(obj["data"]["k"], FrozenList)
        with pytest.raises(TypeError):
            obj["metadata"]["name"] = "changed"  # type: ignore[index]


# -------------------------------------------------------------------------- watching
def test_watch_events_reach_the_sink_in_order(start: Callable[..., Harness]) -> None:
    h = start([cm("a", "10")])
    stream = h.lw.stream(0)

    stream.feed("ADDED", cm("b", "101"))
    stream.feed("MODIFIED", cm("a", "102"))
    stream.feed("DELETED", cm("b", "103"))
    wait(lambda: len(h.sink.calls()) == 4, "three events handled")

    assert h.sink.calls() == [
        ("replace", INITIAL_RV, "1"),
        ("add", "b", "101"),
        ("update", "a", "102"),
        ("delete", "b", "103"),
    ]
    assert h.reflector.last_sync_resource_version == "103"
    assert h.reflector.stats.events == 3
    assert len(h.lw.list_calls) == 1
    assert len(h.lw.watch_calls) == 1


def test_bookmark_only_advances_the_resource_version(start: Callable[..., Harness]) -> None:
    h = start([cm("a", "10")])
    stream = h.lw.stream(0)

    stream.feed("BOOKMARK", {"kind": "ConfigMap", "metadata": {"resourceVersion": "150"}})
    wait(lambda: h.reflector.last_sync_resource_version == "150", "bookmark RV recorded")
    stream.feed("ADDED", cm("b", "160"))  # events are handled in order: a marker
    wait(lambda: len(h.sink.calls()) == 2, "marker event handled")

    assert h.sink.calls() == [("replace", INITIAL_RV, "1"), ("add", "b", "160")]
    assert h.reflector.stats.bookmarks == 1
    assert h.reflector.stats.events == 1


def test_watch_ended_by_server_is_reopened_from_last_rv(start: Callable[..., Harness]) -> None:
    h = start([cm("a", "10")])
    first = h.lw.stream(0)

    first.feed("ADDED", cm("b", "105"))
    first.end()
    h.lw.stream(1)

    assert [c.resource_version for c in h.lw.watch_calls] == [INITIAL_RV, "105"]
    assert first.closed.is_set()
    assert len(h.lw.list_calls) == 1
    assert h.reflector.stats.watch_restarts == 1


@pytest.mark.parametrize(
    "expire",
    [
        pytest.param(
            lambda s: s.feed("ERROR", {"kind": "Status", "code": 410, "reason": "Expired"}),
            id="error-event-410",
        ),
        pytest.param(lambda s: s.fail(Gone("HTTP 410: too old resource version")), id="gone"),
        pytest.param(
            lambda s: s.feed("ERROR", {"kind": "Status", "code": 500, "message": "boom"}),
            id="error-event-500",
        ),
    ],
)
def test_watch_error_relists_from_last_rv(
    start: Callable[..., Harness], expire: Callable[[FakeWatch], None]
) -> None:
    h = start([cm("a", "10")])
    stream = h.lw.stream(0)
    stream.feed("ADDED", cm("b", "105"))
    wait(lambda: h.reflector.last_sync_resource_version == "105", "event handled")
    h.lw.set_collection([cm("a", "10"), cm("b", "105"), cm("c", "190")], "200")

    expire(stream)
    h.lw.stream(1)

    assert h.lw.list_calls[1] == ListCall(500, "", "105")
    assert h.sink.calls()[-1] == ("replace", "200", "3")
    assert [c.resource_version for c in h.lw.watch_calls] == [INITIAL_RV, "200"]
    assert stream.closed.is_set()
    assert h.reflector.stats.relists == 1


def test_relist_that_gets_gone_falls_back_to_consistent_read(
    start: Callable[..., Harness],
) -> None:
    h = start([cm("a", "10")])
    stream = h.lw.stream(0)
    stream.feed("ADDED", cm("b", "105"))
    wait(lambda: h.reflector.last_sync_resource_version == "105", "event handled")
    h.lw.set_collection([cm("c", "190")], "200")
    h.lw.list_errors.append(Gone("HTTP 410: too old resource version"))

    stream.feed("ERROR", {"kind": "Status", "code": 410})
    second = h.lw.stream(1)

    assert h.lw.list_rvs() == ["", "105", ""]
    assert h.sink.calls()[-1] == ("replace", "200", "1")
    assert h.lw.watch_calls[1].resource_version == "200"

    # The fallback is one-off: the next relist again asks for "not older than" the last RV.
    second.feed("ERROR", {"kind": "Status", "code": 410})
    h.lw.stream(2)

    assert h.lw.list_rvs() == ["", "105", "", "200"]


def test_too_large_resource_version_on_relist_retries_with_consistent_read(
    start: Callable[..., Harness],
) -> None:
    h = start([cm("a", "10")])
    stream = h.lw.stream(0)
    h.lw.list_errors.append(ApiError("HTTP 504: Too large resource version", status=504))

    stream.feed("ERROR", {"kind": "Status", "code": 410})
    h.lw.stream(1)

    assert h.lw.list_rvs() == ["", INITIAL_RV, ""]


def test_too_many_requests_on_watch_waits_and_rewatches_without_relist(
    start: Callable[..., Harness],
) -> None:
    lw = FakeListerWatcher([cm("a", "10")])
    lw.watch_errors.append(TooManyRequests("HTTP 429", retry_after=0.05))
    h = start(lw=lw)

    h.lw.stream(0)

    first, second = h.lw.watch_calls
    assert (first.resource_version, second.resource_version) == (INITIAL_RV, INITIAL_RV)
    assert second.at - first.at >= 0.04  # Retry-After was honoured
    assert h.lw.list_calls == [ListCall(500, "", "")]
    assert h.sink.calls() == [("replace", INITIAL_RV, "1")]


def fail_mid_stream(lw: FakeListerWatcher) -> None:
    lw.streams[0].fail(ConnectionFailed("connection reset"))


def fail_next_watch_call(lw: FakeListerWatcher) -> None:
    lw.watch_errors.append(ConnectionFailed("connection refused"))
    lw.streams[0].end()  # the server ends this watch; opening the next one fails


@pytest.mark.parametrize(
    "break_watch",
    [
        pytest.param(fail_mid_stream, id="mid-stream"),
        pytest.param(fail_next_watch_call, id="on-open"),
    ],
)
def test_connection_failure_rewatches_from_last_rv_without_relist(
    start: Callable[..., Harness], break_watch: Callable[[FakeListerWatcher], None]
) -> None:
    h = start([cm("a", "10")])
    stream = h.lw.stream(0)
    stream.feed("ADDED", cm("b", "105"))
    wait(lambda: h.reflector.last_sync_resource_version == "105", "event handled")

    break_watch(h.lw)
    h.lw.stream(1)

    rvs = [c.resource_version for c in h.lw.watch_calls]
    assert rvs[0] == INITIAL_RV
    assert set(rvs[1:]) == {"105"}
    assert len(h.lw.list_calls) == 1
    assert h.reflector.stats.watch_errors == 1
    assert h.reflector.stats.relists == 0


def test_list_failure_is_retried_with_backoff(start: Callable[..., Harness]) -> None:
    lw = FakeListerWatcher([cm("a", "10")])
    lw.list_errors.extend([ServerError("HTTP 500"), ConnectionFailed("refused")])
    h = start(lw=lw)

    h.lw.stream(0)

    assert h.lw.list_rvs() == ["", "", ""]
    assert h.sink.calls() == [("replace", INITIAL_RV, "1")]
    assert h.reflector.stats.relists == 0


# -------------------------------------------------------------------------- stopping
def test_stop_from_another_thread_ends_a_blocked_watch(start: Callable[..., Harness]) -> None:
    h = start([cm("a", "10")])
    stream = h.lw.stream(0)

    started = time.monotonic()
    h.reflector.stop()
    h.thread.join(TIMEOUT)

    assert not h.thread.is_alive()
    assert time.monotonic() - started < 1.0
    assert stream.closed.is_set()
    assert h.reflector.stopped
    assert len(h.lw.watch_calls) == 1


def test_stop_during_backoff_returns_promptly(start: Callable[..., Harness]) -> None:
    lw = FakeListerWatcher([])
    lw.list_errors.append(ServerError("HTTP 500"))
    slow = JitteredBackoff(clock=FakeClock(), initial=30.0, cap=30.0, rand=lambda: 0.0)
    h = start(lw=lw, backoff=slow)
    wait(lambda: h.lw.list_calls, "first list attempted")

    started = time.monotonic()
    h.reflector.stop()
    h.thread.join(TIMEOUT)

    assert not h.thread.is_alive()
    assert time.monotonic() - started < 1.0
    assert len(h.lw.list_calls) == 1


def test_stop_is_idempotent(start: Callable[..., Harness]) -> None:
    h = start([])
    h.lw.stream(0)

    h.reflector.stop()
    h.reflector.stop()
    h.thread.join(TIMEOUT)

    assert not h.thread.is_alive()


def test_watching_is_set_only_once_a_watch_stream_is_open(
    start: Callable[..., Harness],
) -> None:
    lw = FakeListerWatcher([cm("a", "10")])
    for _ in range(50):  # e.g. RBAC allows the list, not the watch
        lw.watch_errors.append(Forbidden("HTTP 403: cannot watch resource"))
    h = start(lw=lw)

    deadline = time.monotonic() + TIMEOUT
    while not h.sink.calls() and time.monotonic() < deadline:
        h.reflector.watching.wait(0.01)
    assert h.sink.calls()  # listed: a cache, but one that is never followed
    assert not h.reflector.watching.wait(0.3)
    lw.watch_errors.clear()
    assert h.reflector.watching.wait(10)
