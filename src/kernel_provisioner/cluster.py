"""The provisioner's connection to the cluster, shared by every kernel of the process.

Jupyter Server asks every kernel whether it is alive every few seconds (``poll``); with
hundreds of kernels, one API request per poll would be a load of its own. Instead, every
kernel of a namespace reads one shared cache: :class:`NamespaceWatch` holds two informers
(the Kernels and their Pods carrying ``jupyter.org/launched-by:
kernel-controller-provisioner``), started on first use and kept for the life of the process.
A poll is a dictionary lookup; the number of watches is two per namespace, whatever the number
of kernels.

- :class:`Clusters` is the process-wide registry (one :class:`Cluster` per kubeconfig, one
  :class:`NamespaceWatch` per namespace of it); :meth:`Clusters.shared` returns it.
  :meth:`Clusters.close` stops and joins everything (tests, or an application that wants a
  clean exit); its threads are daemon threads, so it never keeps a process from exiting.
- A coroutine that waits for a Kernel to change takes a :class:`Subscription` before it looks
  at the cache, then awaits it: a change between the look and the wait is never missed.
- API requests (blocking HTTP) run on the registry's own pool of worker threads
  (:meth:`Clusters.run`), never on the caller's event loop; :meth:`Clusters.close` shuts it.

Threads: the informers' (daemon) and ``kernel-provisioner-<n>`` (the request pool);
notifications cross into each waiter's event loop with ``call_soon_threadsafe``. Everything
here is thread-safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar, TypeVar

from informers import (
    DeletedFinalStateUnknown,
    FuncHandler,
    Resource,
    ResourceClient,
    RestClient,
    SharedInformer,
    close_api_client,
    new_api_client,
)
from kernel_provisioner.kernelbody import SELECTOR
from reconcilers.model import GROUP, NAME_LABEL, PLURAL, VERSION, meta

KERNELS = Resource(GROUP, VERSION, PLURAL)
PODS = Resource("", "v1", "pods")
KERNEL_INDEX = "kernel-name"
SECRETS = Resource("", "v1", "secrets")
USER_AGENT = "kernel-controller-provisioner/0.1"
POOL_SIZE = 16  # two watches per namespace and the launches' and shutdowns' requests
JOIN_SECONDS = 10.0
REQUEST_THREADS = 8

Obj = Mapping[str, Any]
T = TypeVar("T")


def _slim(obj: dict[str, Any]) -> dict[str, Any]:
    """What the provisioner reads of a Kernel or Pod (``managedFields`` dropped)."""
    metadata = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "managedFields"}
    kept: dict[str, Any] = {"metadata": metadata, "status": obj.get("status") or {}}
    return kept


class Subscription:
    """Changes of one Kernel (or its Pod), delivered to the event loop that subscribed."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._changed = asyncio.Event()

    def notify(self) -> None:
        """From an informer thread: wake the waiter (a no-op once its loop is closed)."""
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._changed.set)

    async def wait(self, timeout: float) -> bool:
        """Wait for a change since the last wait; False after ``timeout`` seconds."""
        try:
            await asyncio.wait_for(self._changed.wait(), max(timeout, 0.0))
        except TimeoutError:
            return False
        self._changed.clear()
        return True


class NamespaceWatch:
    """The provisioner's Kernels and Pods of one namespace (see the module docstring)."""

    def __init__(self, rest: RestClient, namespace: str) -> None:
        self.namespace = namespace
        self._lock = threading.Lock()
        self._subscriptions: dict[str, set[Subscription]] = {}  # guarded by _lock

        def informer(
            resource: Resource, indexers: dict[str, Callable[[Obj], list[str]]] | None = None
        ) -> SharedInformer:
            return SharedInformer(
                name=f"provisioner-{resource.plural}-{namespace}",
                lister_watcher=ResourceClient(
                    rest, resource, namespace=namespace, label_selector=SELECTOR
                ),
                transform=_slim,
                indexers=indexers,
                daemon=True,
            )

        self.kernels = informer(KERNELS)
        # A Kernel's Pod is found by its label: one claimed from a warm pool has its own name.
        self.pods = informer(PODS, {KERNEL_INDEX: _pod_kernel_index})
        for inf, name_of in ((self.kernels, _kernel_name), (self.pods, _pod_kernel_name)):
            inf.add_event_handler(self._handler(name_of))
        self.kernels.start()
        self.pods.start()

    def wait_for_sync(self, timeout: float) -> bool:
        """Block until both caches are filled and both watches are open (on a worker thread,
        not an event loop); False after ``timeout`` (e.g. RBAC forbids the list or watch)."""
        deadline = time.monotonic() + timeout
        for inf in (self.kernels, self.pods):
            for wait in (inf.wait_for_sync, inf.wait_for_watch):
                if not wait(max(0.0, deadline - time.monotonic())):
                    return False
        return True

    def kernel(self, name: str) -> Obj | None:
        return self.kernels.indexer.get(f"{self.namespace}/{name}")

    def kernel_pods(self, name: str) -> list[Obj]:
        """The Pods of Kernel ``name``, newest first (two while one replaces another)."""
        found = self.pods.indexer.by_index(KERNEL_INDEX, name)
        return sorted(found, key=_created, reverse=True)

    @contextlib.contextmanager
    def subscribe(self, name: str) -> Iterator[Subscription]:
        """Changes of Kernel ``name`` and its Pod while the ``with`` block runs."""
        subscription = Subscription(asyncio.get_running_loop())
        with self._lock:
            self._subscriptions.setdefault(name, set()).add(subscription)
        try:
            yield subscription
        finally:
            with self._lock:
                waiting = self._subscriptions.get(name)
                if waiting is not None:
                    waiting.discard(subscription)
                    if not waiting:
                        del self._subscriptions[name]

    def watches_opened(self) -> int:
        """WATCH requests both informers have sent so far (one each while healthy)."""
        return self.kernels.stats.watches + self.pods.stats.watches

    def stop(self) -> None:
        for inf in (self.kernels, self.pods):
            inf.stop()
        for inf in (self.kernels, self.pods):
            inf.join(JOIN_SECONDS)

    def _handler(self, name_of: Callable[[Obj], str | None]) -> FuncHandler:
        def changed(obj: Obj | DeletedFinalStateUnknown) -> None:
            item = obj.obj if isinstance(obj, DeletedFinalStateUnknown) else obj
            name = name_of(item)
            if name is None:
                return
            with self._lock:
                waiting = list(self._subscriptions.get(name, ()))
            for subscription in waiting:
                subscription.notify()

        return FuncHandler(
            add=lambda obj, _: changed(obj), update=lambda _, new: changed(new), delete=changed
        )


def _kernel_name(kernel: Obj) -> str | None:
    name = meta(kernel).get("name")
    return str(name) if name else None


def _pod_kernel_index(pod: Obj) -> list[str]:
    name = _pod_kernel_name(pod)
    return [name] if name else []


def _created(obj: Obj) -> tuple[str, str]:
    m = meta(obj)
    return str(m.get("creationTimestamp") or ""), str(m.get("name") or "")


def _pod_kernel_name(pod: Obj) -> str | None:
    name = (meta(pod).get("labels") or {}).get(NAME_LABEL)
    return str(name) if name else None


class Cluster:
    """One API server: a JSON client and the shared watch of each namespace used."""

    def __init__(self, kubeconfig: str | None) -> None:
        self._api = new_api_client(kubeconfig, pool_size=POOL_SIZE)
        self.rest = RestClient(self._api, user_agent=USER_AGENT)
        self._lock = threading.Lock()
        self._watches: dict[str, NamespaceWatch] = {}  # guarded by _lock

    def kernels(self, namespace: str) -> ResourceClient:
        return ResourceClient(self.rest, KERNELS, namespace=namespace)

    def pods(self, namespace: str) -> ResourceClient:
        return ResourceClient(self.rest, PODS, namespace=namespace)

    def secrets(self, namespace: str) -> ResourceClient:
        return ResourceClient(self.rest, SECRETS, namespace=namespace)

    def watch(self, namespace: str) -> NamespaceWatch:
        """The namespace's shared watch, started on first use."""
        with self._lock:
            watch = self._watches.get(namespace)
            if watch is None:
                watch = self._watches[namespace] = NamespaceWatch(self.rest, namespace)
            return watch

    def watches(self) -> list[NamespaceWatch]:
        with self._lock:
            return list(self._watches.values())

    def close(self) -> None:
        with self._lock:
            watches, self._watches = list(self._watches.values()), {}
        for watch in watches:
            watch.stop()
        close_api_client(self._api)


class Clusters:
    """Every :class:`Cluster` of the process, by kubeconfig path (None: the default)."""

    _shared: ClassVar[Clusters | None] = None  # guarded by _shared_lock
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clusters: dict[str | None, Cluster] = {}  # guarded by _lock
        self._executor: ThreadPoolExecutor | None = None  # guarded by _lock

    @classmethod
    def shared(cls) -> Clusters:
        """The process-wide registry, created on first use (never at import)."""
        with cls._shared_lock:
            if cls._shared is None:
                cls._shared = Clusters()
            return cls._shared

    def get(self, kubeconfig: str | None) -> Cluster:
        with self._lock:
            cluster = self._clusters.get(kubeconfig)
            if cluster is None:
                cluster = self._clusters[kubeconfig] = Cluster(kubeconfig)
            return cluster

    async def run(self, call: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run the blocking ``call`` on the request pool and await its result."""
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    REQUEST_THREADS, thread_name_prefix="kernel-provisioner"
                )
            executor = self._executor
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(executor, functools.partial(call, *args, **kwargs))

    def namespace_watches(self) -> list[NamespaceWatch]:
        with self._lock:
            clusters = list(self._clusters.values())
        return [watch for cluster in clusters for watch in cluster.watches()]

    def close(self) -> None:
        """Stop every watch and close every client; the registry may be used again after."""
        with self._lock:
            clusters, self._clusters = list(self._clusters.values()), {}
            executor, self._executor = self._executor, None
        for cluster in clusters:
            cluster.close()
        if executor is not None:
            executor.shutdown(wait=True)
