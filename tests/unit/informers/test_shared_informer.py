"""Unit tests of ``informers.shared_informer.SharedInformer`` against an in-memory
lister-watcher: notifications, relist semantics, slow and failing handlers, resync, lifecycle.

The informer runs its real threads. The test feeds watch events to ``FakeWatch`` streams and
waits for handlers with ``eventually`` (never a fixed sleep); every informer is stopped and
joined by the ``make`` fixture, and the root conftest fails a test that leaks a thread.
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from eventually import eventually
from fakewatch import FakeWatch
from informers.backoff import JitteredBackoff
from informers.clock import FakeClock
from informers.frozen import FrozenDict
from informers.resource import Object
from informers.shared_informer import FuncHandler, SharedInformer
from informers.store import NAMESPACE_INDEX, DeletedFinalStateUnknown, Obj, namespace_index

TIMEOUT = 5.0  # real seconds any single wait may take
POLL = 0.002


def cm(name: str, rv: str, namespace: str = "ns") -> Object:
    return {"metadata": {"name": name, "namespace": namespace, "resourceVersion": rv}}


def wait(probe: Callable[[], Any], message: str) -> Any:
    return eventually(probe, timeout=TIMEOUT, interval=POLL, message=message)


# ------------------------------------------------------------------------------ fakes
class FakeListerWatcher:
    """A one-page collection (``set_collection`` changes what the next list sees) and watches
    fed by the test. ``list_gate``, when set, holds every list until the test opens it."""

    def __init__(self, objects: list[Object], resource_version: str = "100") -> None:
        self._lock = threading.Lock()
        self._objects = objects  # guarded by _lock
        self._resource_version = resource_version  # guarded by _lock
        self.list_gate: threading.Event | None = None
        self.list_rvs: list[str] = []
        self.watch_rvs: list[str] = []
        self.streams: list[FakeWatch] = []

    def set_collection(self, objects: list[Object], resource_version: str) -> None:
        with self._lock:
            self._objects = objects
            self._resource_version = resource_version

    def list(self, *, limit: int, continue_token: str, resource_version: str) -> Object:
        if self.list_gate is not None:
            assert self.list_gate.wait(TIMEOUT), "list gate never opened"
        with self._lock:
            self.list_rvs.append(resource_version)
            return {
                "kind": "ConfigMapList",
                "apiVersion": "v1",
                "metadata": {"resourceVersion": self._resource_version},
                "items": copy.deepcopy(self._objects),
            }

    def watch(
        self, *, resource_version: str, timeout_seconds: int, read_timeout: float
    ) -> FakeWatch:
        with self._lock:
            self.watch_rvs.append(resource_version)
            stream = FakeWatch()
            self.streams.append(stream)
            return stream

    def describe(self) -> str:
        return "configmaps.v1 (fake)"

    def stream(self, n: int) -> FakeWatch:
        """The ``n``-th watch stream (0-based), once the reflector has opened it."""
        wait(lambda: len(self.streams) > n, f"watch #{n} opened")
        return self.streams[n]


def _key(obj: Obj) -> str:
    meta = obj["metadata"]
    return f"{meta['namespace']}/{meta['name']}"


def _rv(obj: Obj) -> str:
    return str(obj["metadata"]["resourceVersion"])


class Recorder:
    """An ``EventHandler`` that records ``(kind, key, rv...)`` tuples and the raw arguments."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: list[tuple[str, ...]] = []
        self.args: list[tuple[Any, ...]] = []  # guarded by _lock
        self.initial: dict[str, bool] = {}  # guarded by _lock; key -> is_in_initial_list

    def on_add(self, obj: Obj, is_in_initial_list: bool) -> None:
        with self._lock:
            self.initial[_key(obj)] = is_in_initial_list
        self._record(("add", _key(obj), _rv(obj)), (obj,))

    def on_update(self, old: Obj, new: Obj) -> None:
        self._record(("update", _key(new), _rv(old), _rv(new)), (old, new))

    def on_delete(self, obj: Obj | DeletedFinalStateUnknown) -> None:
        if isinstance(obj, DeletedFinalStateUnknown):
            self._record(("delete-unknown", obj.key, _rv(obj.obj)), (obj,))
        else:
            self._record(("delete", _key(obj), _rv(obj)), (obj,))

    def _record(self, event: tuple[str, ...], args: tuple[Any, ...]) -> None:
        with self._lock:
            self._events.append(event)
            self.args.append(args)

    def events(self) -> list[tuple[str, ...]]:
        with self._lock:
            return list(self._events)

    def wait_for(self, n: int) -> list[tuple[str, ...]]:
        wait(lambda: len(self.events()) >= n, f"{n} notifications delivered")
        return self.events()


@pytest.fixture
def make() -> Iterator[Callable[..., SharedInformer]]:
    """``make(lw, **kwargs)`` builds an informer that is stopped and joined after the test."""
    made: list[tuple[SharedInformer, FakeListerWatcher]] = []

    def _make(lw: FakeListerWatcher, **kwargs: Any) -> SharedInformer:
        informer = SharedInformer(name=f"cms{len(made)}", lister_watcher=lw, **kwargs)
        made.append((informer, lw))
        return informer

    yield _make
    for informer, lw in made:
        if lw.list_gate is not None:
            lw.list_gate.set()
        informer.stop()
    for informer, _ in made:
        informer.join(TIMEOUT)


def fast_backoff() -> JitteredBackoff:
    """Relisting always waits one backoff delay (0.8-1.6 s by default): shorten it."""
    return JitteredBackoff(clock=FakeClock(), initial=0.01, cap=0.05)


def cached_rv(informer: SharedInformer, key: str) -> str | None:
    obj = informer.indexer.get(key)
    return None if obj is None else _rv(obj)


def expire_watch(lw: FakeListerWatcher, n: int) -> None:
    """End watch ``n`` with 410 Expired, so that the reflector relists."""
    lw.stream(n).feed("ERROR", {"kind": "Status", "code": 410, "reason": "Expired"})


# --------------------------------------------------------------------- notifications
def test_handlers_get_add_update_delete_in_order(make: Callable[..., SharedInformer]) -> None:
    lw = FakeListerWatcher([cm("a", "10")])
    informer = make(lw, indexers={NAMESPACE_INDEX: namespace_index})
    recorder = Recorder()
    informer.add_event_handler(recorder)
    informer.start()
    stream = lw.stream(0)

    stream.feed("MODIFIED", cm("a", "11"))
    stream.feed("ADDED", cm("b", "12", namespace="other"))
    stream.feed("DELETED", cm("a", "13"))
    stream.feed("MODIFIED", cm("b", "14", namespace="other"))

    assert recorder.wait_for(5) == [
        ("add", "ns/a", "10"),
        ("update", "ns/a", "10", "11"),
        ("add", "other/b", "12"),
        ("delete", "ns/a", "13"),
        ("update", "other/b", "12", "14"),
    ]
    assert informer.indexer.keys() == ["other/b"]
    assert [_rv(o) for o in informer.indexer.by_index(NAMESPACE_INDEX, "other")] == ["14"]
    assert informer.indexer.by_index(NAMESPACE_INDEX, "ns") == []


def test_handlers_and_cache_get_frozen_objects_with_kind(
    make: Callable[..., SharedInformer],
) -> None:
    lw = FakeListerWatcher([cm("a", "10")])
    informer = make(lw)
    recorder = Recorder()
    informer.add_event_handler(recorder)
    informer.start()

    recorder.wait_for(1)

    (delivered,) = recorder.args[0]
    assert isinstance(delivered, FrozenDict)
    assert delivered is informer.indexer.get("ns/a")
    assert (delivered["kind"], delivered["apiVersion"]) == ("ConfigMap", "v1")


def test_relist_notifies_only_real_changes(make: Callable[..., SharedInformer]) -> None:
    lw = FakeListerWatcher([cm("same", "10"), cm("changed", "10"), cm("gone", "10")])
    informer = make(lw, backoff=fast_backoff())
    recorder = Recorder()
    informer.add_event_handler(recorder)
    informer.start()
    recorder.wait_for(3)
    lw.set_collection([cm("same", "10"), cm("changed", "20"), cm("new", "30")], "200")

    expire_watch(lw, 0)
    lw.stream(1).feed("ADDED", cm("marker", "201"))  # delivered after all relist notifications
    events = recorder.wait_for(3 + 3 + 1)

    assert events[-1] == ("add", "ns/marker", "201")
    assert sorted(events[3:-1]) == [
        ("add", "ns/new", "30"),
        ("delete-unknown", "ns/gone", "10"),
        ("update", "ns/changed", "10", "20"),
    ]  # and nothing for "same": its resourceVersion did not change
    assert lw.list_rvs == ["", "100"]
    assert sorted(informer.indexer.keys()) == ["ns/changed", "ns/marker", "ns/new", "ns/same"]


def test_only_adds_of_the_initial_list_are_marked_initial(
    make: Callable[..., SharedInformer],
) -> None:
    lw = FakeListerWatcher([cm("listed", "10")])
    informer = make(lw, backoff=fast_backoff())
    recorder = Recorder()
    informer.add_event_handler(recorder)
    informer.start()
    recorder.wait_for(1)
    lw.stream(0).feed("ADDED", cm("watched", "11"))
    recorder.wait_for(2)
    lw.set_collection([cm("listed", "10"), cm("watched", "11"), cm("relisted", "20")], "200")
    expire_watch(lw, 0)
    lw.stream(1).feed("ADDED", cm("marker", "201"))
    recorder.wait_for(4)
    late = Recorder()  # registered on a running informer: the cache is its initial list
    informer.add_event_handler(late)
    late.wait_for(4)

    assert recorder.initial == {
        "ns/listed": True,
        "ns/watched": False,
        "ns/relisted": False,  # a later relist is not the initial list (client-go)
        "ns/marker": False,
    }
    assert set(late.initial.values()) == {True}


def test_deleted_final_state_unknown_carries_last_known_state(
    make: Callable[..., SharedInformer],
) -> None:
    lw = FakeListerWatcher([cm("a", "10")])
    informer = make(lw, backoff=fast_backoff())
    deletes: list[Obj | DeletedFinalStateUnknown] = []
    informer.add_event_handler(FuncHandler(delete=deletes.append))
    informer.start()
    lw.stream(0).feed("MODIFIED", cm("a", "15"))
    wait(lambda: cached_rv(informer, "ns/a") == "15", "update cached")
    lw.set_collection([], "200")

    expire_watch(lw, 0)
    wait(lambda: deletes, "tombstone delivered")

    (tombstone,) = deletes
    assert isinstance(tombstone, DeletedFinalStateUnknown)
    assert tombstone.key == "ns/a"
    assert _rv(tombstone.obj) == "15"
    assert informer.indexer.get("ns/a") is None


# ------------------------------------------------------------ slow and failing handlers
def test_blocked_handler_does_not_hold_up_others_or_the_cache(
    make: Callable[..., SharedInformer],
) -> None:
    lw = FakeListerWatcher([cm("a", "10")])
    informer = make(lw)
    release = threading.Event()
    blocked = threading.Event()
    slow_seen: list[str] = []

    def slow_add(obj: Obj, initial: bool) -> None:
        blocked.set()
        release.wait(TIMEOUT)
        slow_seen.append(_key(obj))

    informer.add_event_handler(FuncHandler(add=slow_add))
    fast = Recorder()
    informer.add_event_handler(fast)
    informer.start()
    try:
        wait(blocked.is_set, "slow handler blocked")
        lw.stream(0).feed("ADDED", cm("b", "11"))
        lw.stream(0).feed("ADDED", cm("c", "12"))

        assert fast.wait_for(3) == [
            ("add", "ns/a", "10"),
            ("add", "ns/b", "11"),
            ("add", "ns/c", "12"),
        ]
        assert sorted(informer.indexer.keys()) == ["ns/a", "ns/b", "ns/c"]
        assert slow_seen == []
        assert informer.pending_notifications() == 2  # b and c, waiting for the slow handler
    finally:
        release.set()

    wait(lambda: len(slow_seen) == 3, "slow handler caught up")
    assert slow_seen == ["ns/a", "ns/b", "ns/c"]


def test_handler_exception_does_not_stop_later_deliveries(
    make: Callable[..., SharedInformer], caplog: pytest.LogCaptureFixture
) -> None:
    lw = FakeListerWatcher([cm("a", "10")])
    informer = make(lw)
    seen: list[str] = []

    def flaky_add(obj: Obj, initial: bool) -> None:
        seen.append(_key(obj))
        if _key(obj) == "ns/a":
            raise RuntimeError("handler bug")

    informer.add_event_handler(FuncHandler(add=flaky_add))
    informer.start()
    with caplog.at_level(logging.ERROR, logger="informers.shared_informer"):
        wait(lambda: seen, "first add delivered")
        lw.stream(0).feed("ADDED", cm("b", "11"))
        wait(lambda: len(seen) == 2, "later add delivered")

    assert seen == ["ns/a", "ns/b"]
    assert informer.threads_alive()
    assert any("handler" in r.getMessage() and r.exc_info for r in caplog.records)


# -------------------------------------------------------------------------- resync
def test_resync_replays_cache_as_updates_without_api_calls(
    make: Callable[..., SharedInformer],
) -> None:
    lw = FakeListerWatcher([cm("a", "10"), cm("b", "10")])
    informer = make(lw, resync_period=0.01)
    recorder = Recorder()
    informer.add_event_handler(recorder)
    informer.start()

    events = recorder.wait_for(2 + 4)  # two adds, then at least two resync rounds

    assert sorted(events[:2]) == [("add", "ns/a", "10"), ("add", "ns/b", "10")]
    assert set(events[2:]) == {("update", "ns/a", "10", "10"), ("update", "ns/b", "10", "10")}
    for old, new in recorder.args[2:]:
        assert old is new
        assert old is informer.indexer.get(_key(new))
    assert lw.list_rvs == [""]
    assert lw.watch_rvs == ["100"]


def test_no_resync_without_a_period(make: Callable[..., SharedInformer]) -> None:
    lw = FakeListerWatcher([cm("a", "10")])
    informer = make(lw)
    recorder = Recorder()
    informer.add_event_handler(recorder)
    informer.start()
    recorder.wait_for(1)

    lw.stream(0).feed("ADDED", cm("b", "11"))  # a marker: anything earlier was delivered

    assert recorder.wait_for(2) == [("add", "ns/a", "10"), ("add", "ns/b", "11")]
    assert not any(t.name == "cms0-resync" for t in threading.enumerate())


# ------------------------------------------------------------------------ lifecycle
def test_handler_added_after_start_gets_existing_objects_as_adds(
    make: Callable[..., SharedInformer],
) -> None:
    lw = FakeListerWatcher([cm("a", "10"), cm("b", "11")])
    informer = make(lw)
    before_start = Recorder()
    informer.add_event_handler(before_start)
    informer.start()
    assert informer.wait_for_sync(TIMEOUT)
    before_start.wait_for(2)
    late = Recorder()

    informer.add_event_handler(late)
    lw.stream(0).feed("ADDED", cm("c", "12"))

    assert sorted(late.wait_for(3)) == [
        ("add", "ns/a", "10"),
        ("add", "ns/b", "11"),
        ("add", "ns/c", "12"),
    ]
    assert before_start.wait_for(3)[2] == ("add", "ns/c", "12")
    assert sorted(before_start.events()) == sorted(late.events())


def test_has_synced_after_first_list(make: Callable[..., SharedInformer]) -> None:
    lw = FakeListerWatcher([cm("a", "10")])
    lw.list_gate = threading.Event()
    informer = make(lw)
    assert not informer.has_synced()

    informer.start()

    assert not informer.wait_for_sync(0.01)
    assert not informer.has_synced()
    assert informer.indexer.list() == []
    lw.list_gate.set()
    assert informer.wait_for_sync(TIMEOUT)
    assert informer.has_synced()
    assert informer.indexer.keys() == ["ns/a"]


def test_start_twice_raises(make: Callable[..., SharedInformer]) -> None:
    informer = make(FakeListerWatcher([]))
    informer.start()

    with pytest.raises(RuntimeError, match="already started"):
        informer.start()


def test_stop_and_join_leave_no_threads(make: Callable[..., SharedInformer]) -> None:
    lw = FakeListerWatcher([cm("a", "10")])
    informer = make(lw, resync_period=0.01)
    recorder = Recorder()
    informer.add_event_handler(recorder)
    informer.add_event_handler(FuncHandler())
    informer.start()
    recorder.wait_for(1)
    stream = lw.stream(0)
    names = {t.name for t in threading.enumerate() if t.name.startswith("cms0-")}
    assert names == {"cms0-reflector", "cms0-resync", "cms0-handler-0", "cms0-handler-1"}
    assert informer.threads_alive()

    informer.stop()
    informer.join(TIMEOUT)

    assert [t.name for t in threading.enumerate() if t.name.startswith("cms0-")] == []
    assert stream.closed.is_set()
    assert informer.reflector.stopped


@pytest.mark.parametrize("daemon", [False, True], ids=["owned-process", "embedded-library"])
def test_daemon_informers_never_keep_their_process_alive(
    make: Callable[..., SharedInformer], daemon: bool
) -> None:
    lw = FakeListerWatcher([cm("a", "10")])
    informer = make(lw, resync_period=0.01, daemon=daemon)
    recorder = Recorder()
    informer.add_event_handler(recorder)
    informer.start()
    recorder.wait_for(1)

    threads = {t.name: t.daemon for t in threading.enumerate() if t.name.startswith("cms0-")}
    assert threads["cms0-reflector"] is daemon
    assert threads["cms0-resync"] is daemon
    assert threads["cms0-handler-0"] is True  # delivery threads always are
