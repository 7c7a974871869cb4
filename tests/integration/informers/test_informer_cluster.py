"""The reflector and shared informer against a real API server, with real faults: many
objects in pages, an API server restart mid-watch, etcd compaction while the watch is down,
and a silently stalled watch."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from apistate import CountingObserver, cache_state, retry_through_outage, server_state
from eventually import eventually
from informers.backoff import JitteredBackoff
from informers.client import RestClient, WatchStream
from informers.clock import RealClock
from informers.errors import ConnectionFailed
from informers.resource import Object, Resource, ResourceClient
from informers.shared_informer import SharedInformer
from informers.store import DeletedFinalStateUnknown, Obj
from localcluster import APISERVER, ControlPlane

FAST_BACKOFF = {"initial": 0.2, "cap": 1.0}
PODTEMPLATES = Resource("", "v1", "podtemplates")


class Recorder:
    """Remembers the last state each handler call delivered, per key."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.last: dict[str, str] = {}  # key -> resourceVersion; guarded by _lock
        self.deleted: set[str] = set()  # guarded by _lock
        self.tombstones: set[str] = set()  # guarded by _lock
        self.ever_seen: set[str] = set()  # guarded by _lock

    def on_add(self, obj: Obj, is_in_initial_list: bool) -> None:
        self._seen(obj)

    def on_update(self, old: Obj, new: Obj) -> None:
        self._seen(new)

    def on_delete(self, obj: Obj | DeletedFinalStateUnknown) -> None:
        with self._lock:
            if isinstance(obj, DeletedFinalStateUnknown):
                self.tombstones.add(obj.key)
                key = str(obj.key)
            else:
                key = _key(obj)
            self.deleted.add(key)
            self.last.pop(key, None)

    def _seen(self, obj: Obj) -> None:
        with self._lock:
            key = _key(obj)
            self.last[key] = obj["metadata"]["resourceVersion"]
            self.deleted.discard(key)
            self.ever_seen.add(key)

    def snapshot(self) -> tuple[dict[str, str], set[str], set[str]]:
        with self._lock:
            return dict(self.last), set(self.deleted), set(self.tombstones)


def _key(obj: Obj) -> str:
    return f"{obj['metadata']['namespace']}/{obj['metadata']['name']}"


def configmap(name: str, value: str = "0") -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {"suite": "informers"}}, "data": {"v": value}}


def in_sync(informer: SharedInformer, resource: ResourceClient) -> bool:
    return cache_state(informer) == server_state(resource)


def test_lists_2000_objects_in_pages_then_watches(
    configmaps: ResourceClient,
    observer: CountingObserver,
    start_informer: Callable[..., SharedInformer],
) -> None:
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: configmaps.create(configmap(f"cm-{i:04d}")), range(2000)))
    lists_before = observer.count("list")

    informer = start_informer(name="configmaps", lister_watcher=configmaps)
    informer.start()
    assert informer.wait_for_sync(60)

    assert len(informer.indexer) == 2000
    assert observer.count("list") - lists_before == 4  # pages of 500
    assert cache_state(informer) == server_state(configmaps)

    for i in range(10):
        configmaps.create(configmap(f"new-{i}"))
        configmaps.patch(f"cm-{i:04d}", {"data": {"v": "changed"}})
        configmaps.delete(f"cm-{1000 + i:04d}")
    eventually(lambda: in_sync(informer, configmaps), timeout=30, message="cache != server")
    assert informer.indexer.get(f"{configmaps.namespace}/cm-0000")["data"] == {"v": "changed"}
    assert informer.stats.relists == 0


def test_apiserver_restart_mid_watch_loses_no_change(
    control_plane: ControlPlane,
    configmaps: ResourceClient,
    start_informer: Callable[..., SharedInformer],
) -> None:
    recorder = Recorder()
    informer = start_informer(
        name="configmaps",
        lister_watcher=configmaps,
        backoff=JitteredBackoff(clock=RealClock(), **FAST_BACKOFF),
    )
    informer.add_event_handler(recorder)
    informer.start()
    assert informer.wait_for_sync(30)

    restarted = threading.Event()
    deleted: set[str] = set()

    def write() -> None:
        for i in range(120):
            name = f"cm-{i:03d}"
            retry_through_outage(lambda name=name: configmaps.create(configmap(name)))
            if i >= 1:
                prev = f"cm-{i - 1:03d}"
                retry_through_outage(
                    lambda prev=prev, i=i: configmaps.patch(prev, {"data": {"v": str(i)}})
                )
            if i >= 2 and i % 3 == 0:
                gone = f"cm-{i - 2:03d}"
                retry_through_outage(lambda gone=gone: configmaps.delete(gone))
                deleted.add(f"{configmaps.namespace}/{gone}")
            if i == 40:
                restarted.wait(120)

    writer = threading.Thread(target=write, name="writer")
    writer.start()
    try:
        eventually(lambda: len(informer.indexer) >= 20, timeout=60, message="writes not seen")
        control_plane.restart_apiserver()
        restarted.set()
    finally:
        restarted.set()
        writer.join(180)
    assert not writer.is_alive()

    eventually(lambda: in_sync(informer, configmaps), timeout=60, message="cache != server")
    server = server_state(configmaps)
    eventually(
        lambda: recorder.snapshot()[0] == server,
        timeout=30,
        message="handlers did not see the last state of every object",
    )
    # Every deletion of an object the handlers knew was delivered. (An object created and
    # deleted while the watch was down is never seen at all, as with client-go.)
    _, seen_deleted, _ = recorder.snapshot()
    assert deleted & recorder.ever_seen <= seen_deleted
    assert len(deleted & recorder.ever_seen) >= len(deleted) // 2
    assert informer.stats.watch_restarts >= 1


class Partition:
    """Wraps a real ListerWatcher and cuts it off from the API server on demand, as a
    network partition of this client would (the server itself keeps running)."""

    def __init__(self, inner: ResourceClient) -> None:
        self.inner = inner
        self.down = threading.Event()
        self._lock = threading.Lock()
        self._stream: WatchStream | None = None  # guarded by _lock

    def describe(self) -> str:
        return f"partitionable {self.inner.describe()}"

    def list(self, *, limit: int, continue_token: str, resource_version: str) -> Object:
        if self.down.is_set():
            raise ConnectionFailed("partitioned")
        return self.inner.list(
            limit=limit, continue_token=continue_token, resource_version=resource_version
        )

    def watch(
        self, *, resource_version: str, timeout_seconds: int, read_timeout: float
    ) -> WatchStream:
        if self.down.is_set():
            raise ConnectionFailed("partitioned")
        stream = self.inner.watch(
            resource_version=resource_version,
            timeout_seconds=timeout_seconds,
            read_timeout=read_timeout,
        )
        with self._lock:
            self._stream = stream
        return stream

    def cut(self) -> None:
        self.down.set()
        with self._lock:
            if self._stream is not None:
                self._stream.close()

    def heal(self) -> None:
        self.down.clear()


def pod_template(name: str, value: str = "0") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"v": value}},
        "template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}},
    }


def test_compaction_while_watch_is_down_relists_and_reports_deletions(
    control_plane: ControlPlane,
    rest: RestClient,
    namespace: str,
    start_informer: Callable[..., SharedInformer],
) -> None:
    # PodTemplates bypass the API server's watch cache (see the harness): a watch from a
    # compacted resourceVersion is answered by etcd with 410 Gone.
    templates = ResourceClient(rest, PODTEMPLATES, namespace=namespace)
    for i in range(20):
        templates.create(pod_template(f"pt-{i:02d}"))
    partition = Partition(templates)
    recorder = Recorder()
    informer = start_informer(
        name="podtemplates",
        lister_watcher=partition,
        backoff=JitteredBackoff(clock=RealClock(), **FAST_BACKOFF),
    )
    informer.add_event_handler(recorder)
    informer.start()
    assert informer.wait_for_sync(30)
    eventually(lambda: informer.stats.watches >= 1, timeout=10, message="watch not started")

    partition.cut()
    for i in range(5):
        templates.delete(f"pt-{i:02d}")
        templates.patch(f"pt-{10 + i:02d}", {"metadata": {"labels": {"v": "while-down"}}})
    control_plane.compact_etcd()
    partition.heal()

    eventually(lambda: informer.stats.relists >= 1, timeout=30, message="no relist after 410")
    eventually(lambda: in_sync(informer, templates), timeout=30, message="cache != server")
    gone = {f"{namespace}/pt-{i:02d}" for i in range(5)}
    eventually(
        lambda: gone <= recorder.snapshot()[2],
        timeout=10,
        message="deleted objects not reported as tombstones",
    )
    assert recorder.snapshot()[0] == server_state(templates)


def test_stalled_watch_is_detected_and_recovered(
    control_plane: ControlPlane,
    configmaps: ResourceClient,
    start_informer: Callable[..., SharedInformer],
) -> None:
    # A ticker keeps the watch busy (an event every 0.3 s), so a healthy stream never stays
    # silent for the 2 s read timeout; only the frozen API server can make it silent.
    configmaps.create(configmap("ticker"))
    stop_ticking = threading.Event()

    def tick() -> None:
        n = 0
        while not stop_ticking.wait(0.3):
            n += 1
            retry_through_outage(
                lambda n=n: configmaps.patch("ticker", {"data": {"v": str(n)}}), timeout=60
            )

    informer = start_informer(
        name="configmaps",
        lister_watcher=configmaps,
        read_timeout=2.0,
        backoff=JitteredBackoff(clock=RealClock(), **FAST_BACKOFF),
    )
    informer.start()
    ticker = threading.Thread(target=tick, name="ticker")
    ticker.start()
    try:
        assert informer.wait_for_sync(30)
        eventually(lambda: informer.stats.events >= 10, timeout=10, message="no ticks seen")
        assert informer.stats.watch_errors == 0

        control_plane.pause(APISERVER)
        try:
            eventually(
                lambda: informer.stats.watch_errors >= 1,
                timeout=15,
                message="stalled watch not detected",
            )
        finally:
            control_plane.resume(APISERVER)

        configmaps.create(configmap("after-stall"))
        key = f"{configmaps.namespace}/after-stall"
        eventually(lambda: informer.indexer.get(key), timeout=30, message="no event after stall")
    finally:
        stop_ticking.set()
        ticker.join(60)
    eventually(lambda: in_sync(informer, configmaps), timeout=30, message="cache != server")
    assert informer.stats.relists == 0
