"""The local node process: informers, work queue, workers, reaper and heartbeat, wired.

Threads (all stopped and joined by :meth:`LocalNode.run` before it returns):

- four informers (reflector + handler thread each): Pods labelled ``jupyter.org/kernel-name``
  (kernels) or ``jupyter.org/kernel-pool`` (warm pools' standby Pods), each bound to this node
  (``spec.nodeName=<node>``) or not bound to any node (``spec.nodeName=``), optionally in one
  namespace; their handlers enqueue ``namespace/name``, and a Pod's key is read from the
  newest copy any of them holds;
- ``localnode-worker-<n>``: take keys from one :class:`informers.RateLimitingQueue` and run
  :meth:`PodSyncer.sync` (a key is never synced by two workers at once); readiness polling is
  a delayed re-add, errors a rate-limited one (50 ms → 10 s per key);
- ``localnode-reaper`` (:class:`ProcessTable`): enqueues a key when its process exits;
- ``localnode-heartbeat`` (:class:`NodeAgent`).

Start: check that loopback addresses can be bound (process mode), register the Node (retried
until it works or the node is stopped), start the informers and wait for their caches, keep
the IPs of Pods already bound here, start the workers, reaper and heartbeat, then call
``on_ready``. Stop (``stop`` event set): stop the informers and the queue, join the workers,
stop the heartbeat and the reaper, SIGTERM every kernel process (SIGKILL after
``shutdown_grace_seconds``). The Node object and the Pods' last statuses stay as they are.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from informers import (
    ApiError,
    BucketRateLimiter,
    DeletedFinalStateUnknown,
    FuncHandler,
    ItemExponentialFailureRateLimiter,
    MaxOfRateLimiter,
    Object,
    RateLimitingQueue,
    RealClock,
    ResourceClient,
    RestClient,
    SharedInformer,
    object_key,
)
from localnode.ipam import AddressPool, loopback_usable
from localnode.nodeobj import NODES, NodeAgent
from localnode.podspec import KERNEL_NAME_LABEL, KERNEL_POOL_LABEL, Pod
from localnode.processes import ProcessTable
from localnode.settings import Settings
from localnode.sync import PODS, SECRETS, PodSyncer, RetryLater

log = logging.getLogger(__name__)

REGISTER_RETRY_SECONDS = 2.0
SYNC_POLL_SECONDS = 0.5
JOIN_TIMEOUT_SECONDS = 10.0
RETRY_BASE_SECONDS, RETRY_MAX_SECONDS = 0.05, 10.0


# The Pods this node runs: those of Kernels, and the standby Pods of warm pools (a claimed Pod
# has both labels, so it is in both caches). Label selectors cannot say "or": one informer
# pair per label.
POD_SELECTORS = ((KERNEL_NAME_LABEL, ""), (KERNEL_POOL_LABEL, "-pool"))


class PodCaches:
    """Reads several informers' caches as one: the newest copy of a Pod wins."""

    def __init__(self, informers: Sequence[SharedInformer]) -> None:
        self._informers = tuple(informers)

    def get(self, key: str) -> Pod | None:
        found = [p for p in (i.indexer.get(key) for i in self._informers) if p is not None]
        return max(found, key=_version) if found else None

    def list(self) -> list[Pod]:
        pods: dict[str, Pod] = {}
        for informer in self._informers:
            for pod in informer.indexer.list():
                key = object_key(pod)
                if key not in pods or _version(pod) > _version(pods[key]):
                    pods[key] = pod
        return list(pods.values())


def _version(pod: Pod) -> int:
    value = str((pod.get("metadata") or {}).get("resourceVersion") or "0")
    return int(value) if value.isdigit() else 0


class StartupError(Exception):
    """The node cannot run on this machine."""


class LocalNode:
    """One local node; :meth:`run` blocks until ``stop`` is set."""

    def __init__(self, rest: RestClient, settings: Settings) -> None:
        self._s = settings
        clock = RealClock()
        # Retries back off 50 ms → 10 s (not client-go's 1000 s: a Secret created late must
        # not keep a kernel waiting for minutes), within 10/s overall (burst 100).
        limiter = MaxOfRateLimiter(
            ItemExponentialFailureRateLimiter(RETRY_BASE_SECONDS, RETRY_MAX_SECONDS),
            BucketRateLimiter(qps=10.0, burst=100, clock=clock),
        )
        self._queue: RateLimitingQueue[str] = RateLimitingQueue(
            name="localnode", clock=clock, rate_limiter=limiter
        )
        self._stopping = threading.Event()
        bound, unbound = f"spec.nodeName={settings.node_name}", "spec.nodeName="
        self._informers = [
            self._informer(rest, f"localnode-{which}{suffix}", fields, labels)
            for labels, suffix in POD_SELECTORS
            for which, fields in (("bound", bound), ("unbound", unbound))
        ]
        self._bound = PodCaches(self._informers[0::2])
        self._unbound = PodCaches(self._informers[1::2])
        self.processes = ProcessTable(on_exit=self._queue.add)
        self.addresses = AddressPool()
        self._syncer = PodSyncer(
            settings=settings,
            pods=ResourceClient(rest, PODS),
            secrets=ResourceClient(rest, SECRETS),
            bound=self._bound,
            unbound=self._unbound,
            addresses=self.addresses,
            processes=self.processes,
        )
        self._agent = NodeAgent(
            ResourceClient(rest, NODES), settings.node_name, interval=settings.heartbeat_seconds
        )
        self._workers = [
            threading.Thread(target=self._work, name=f"localnode-worker-{n}")
            for n in range(max(1, settings.workers))
        ]

    def _informer(
        self, rest: RestClient, name: str, field_selector: str, label_selector: str
    ) -> SharedInformer:
        client = ResourceClient(
            rest,
            PODS,
            namespace=self._s.namespace,
            label_selector=label_selector,
            field_selector=field_selector,
        )
        return SharedInformer(name=name, lister_watcher=client, transform=_strip_managed_fields)

    # ------------------------------------------------------------ lifecycle
    def run(self, stop: threading.Event, on_ready: Callable[[], None] | None = None) -> None:
        """Run until ``stop`` is set; raises :class:`StartupError` if it cannot start."""
        try:
            if not self._s.no_processes and not loopback_usable():
                raise StartupError("cannot listen on 127.0.0.2: 127.0.0.0/8 is not loopback here")
            if not self._s.no_processes and not self._s.launch_script.is_file():
                log.warning("launch script %s does not exist (yet)", self._s.launch_script)
            if not self._register(stop):
                return
            handler = FuncHandler(
                add=lambda pod, _: self._enqueue(pod), update=self._enqueue_new, delete=self._gone
            )
            for informer in self._informers:
                informer.add_event_handler(handler)
                informer.start()
            if not self._wait_synced(stop):
                return
            kept = self._syncer.restore()
            for worker in self._workers:
                worker.start()
            self.processes.start_reaper()
            self._agent.start()
            log.info(
                "node %s ready (%s; %d pod IP(s) kept, %d workers)",
                self._s.node_name,
                "status only" if self._s.no_processes else f"runs {self._s.launch_script}",
                kept,
                len(self._workers),
            )
            if on_ready is not None:
                on_ready()
            stop.wait()
        finally:
            self._shutdown()

    def _register(self, stop: threading.Event) -> bool:
        while not stop.is_set():
            try:
                self._agent.register()
                return True
            except ApiError as err:
                log.warning("cannot register node %s: %s", self._s.node_name, err)
            stop.wait(REGISTER_RETRY_SECONDS)
        return False

    def _wait_synced(self, stop: threading.Event) -> bool:
        for informer in self._informers:
            while not informer.wait_for_sync(SYNC_POLL_SECONDS):
                if stop.is_set():
                    return False
        return not stop.is_set()

    def _shutdown(self) -> None:
        self._stopping.set()
        for informer in self._informers:
            informer.stop()
        self._queue.shut_down()
        for worker in self._workers:
            if worker.ident is not None:
                worker.join(JOIN_TIMEOUT_SECONDS)
        self._agent.stop()
        self.processes.stop()
        self._agent.join()
        self.processes.join()
        self.processes.shutdown(self._s.shutdown_grace_seconds)
        for informer in self._informers:
            informer.join()
        log.info("node %s stopped", self._s.node_name)

    # ------------------------------------------------------------- handlers
    def _enqueue(self, obj: Pod) -> None:
        self._queue.add(object_key(obj))

    def _enqueue_new(self, old: Pod, new: Pod) -> None:
        self._queue.add(object_key(new))

    def _gone(self, obj: Pod | DeletedFinalStateUnknown) -> None:
        key = obj.key if isinstance(obj, DeletedFinalStateUnknown) else object_key(obj)
        self._queue.add(key)

    # --------------------------------------------------------------- worker
    def _work(self) -> None:
        while True:
            key, _ = self._queue.get()
            if key is None:
                return
            try:
                delay = None if self._stopping.is_set() else self._syncer.sync(key)
            except RetryLater as err:
                log.info("retrying %s later: %s", key, err)
                self._queue.add_rate_limited(key)
            except ApiError as err:
                log.warning("sync of %s failed: %s", key, err)
                self._queue.add_rate_limited(key)
            except Exception:
                log.exception("sync of %s failed", key)
                self._queue.add_rate_limited(key)
            else:
                self._queue.forget(key)
                if delay is not None:
                    self._queue.add_after(key, delay)
            finally:
                self._queue.done(key)


def _strip_managed_fields(obj: Object) -> Object:
    (obj.get("metadata") or {}).pop("managedFields", None)
    return obj
