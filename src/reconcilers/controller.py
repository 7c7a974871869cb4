"""The Kernel controller loop: informers → keys on a rate-limited queue → N workers.

Informers watch Kernels (all namespaces, or the given ones), Pods and Services carrying the
label ``jupyter.org/kernel-name`` (never the whole cluster), when re-issuing is on, Warning
Events of Pods, and, when serving all namespaces, Namespaces (to know at once which are being
deleted; a namespace-scoped controller learns it from the API server's refusals instead).
Their handlers only map the object to its Kernel's
``namespace/name`` key and enqueue it. Workers start only after every cache has synced; each
runs ``KernelReconciler.reconcile(key)`` and acts on the outcome (forget, requeue after,
rate-limited retry). The queue guarantees that one key is never reconciled by two workers at
once.

New work before old: the queue is a priority queue (controller-runtime's, v0.20+). Keys that
come from an informer's initial list (a start, or a standby replica's warm cache when it takes
over) and from resyncs are added with ``LOW_PRIORITY``; keys from watch events (a new or changed
Kernel, Pod or Service) with the normal priority, so a Kernel created right after a start or a
failover is served before the thousands of settled ones of the initial list. A retry or a
requeue keeps the priority the key had when it was handed out.

Threads: the informers' own, plus ``kernel-worker-<n>``. ``start()`` starts the informers,
``start_workers()`` the workers, ``stop(drain_timeout)`` stops taking work, lets reconciles in
flight finish (bounded), then stops the informers and joins everything.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Protocol

from opentelemetry import trace

from informers import (
    LOW_PRIORITY,
    NAMESPACE_INDEX,
    NORMAL_PRIORITY,
    Clock,
    DeletedFinalStateUnknown,
    FuncHandler,
    MultiNamespaceInformer,
    QueueMetrics,
    RateLimitingQueue,
    RealClock,
    Resource,
    ResourceClient,
    RestClient,
    SharedInformer,
    Transform,
    default_controller_rate_limiter,
    namespace_index,
    object_key,
)
from reconcilers import context
from reconcilers.activation import Activator, HttpActivator, activation_token
from reconcilers.apply import POD, SERVICE, Applier, Clients, KernelMetrics
from reconcilers.claim import PoolClaims
from reconcilers.events import EventRecorder
from reconcilers.expectations import Expectations
from reconcilers.kernel import (
    INVOLVED_INDEX,
    KERNEL_POD_INDEX,
    POOL_INDEX,
    KernelReconciler,
    ReissueLog,
    involved_object_index,
    kernel_pod_index,
    new_fresh,
    pool_index,
)
from reconcilers.model import (
    GROUP,
    NAME_LABEL,
    PLURAL,
    POOL_LABEL,
    POOL_PLURAL,
    POOL_VERSION,
    VERSION,
    Fresh,
    Obj,
    ReconcileSettings,
    meta,
    pool_ref,
)
from reconcilers.outcome import Result, TerminalError, TransientError
from reconcilers.pool import PoolClients, PoolReconciler
from reconcilers.pooled import activation_of, idle_candidates
from reconcilers.terminating import TerminatingNamespaces
from reconcilers.transforms import (
    strip_event,
    strip_kernel,
    strip_namespace,
    strip_pod,
    strip_pool,
    strip_service,
)

log = logging.getLogger(__name__)

KERNELS = Resource(GROUP, VERSION, PLURAL)
PODS = Resource("", "v1", "pods")
SERVICES = Resource("", "v1", "services")
SECRETS = Resource("", "v1", "secrets")
EVENTS = Resource("", "v1", "events")
NAMESPACES = Resource("", "v1", "namespaces", namespaced=False)
POOLS = Resource(GROUP, POOL_VERSION, POOL_PLURAL)
POD_WARNINGS_SELECTOR = "involvedObject.kind=Pod,type=Warning"
CONTROLLER_NAME = "kernel"
POOL_CONTROLLER_NAME = "kernelpool"
# A Kernel whose claimed kernel was just activated: the pass that turns it Ready goes before
# new work, so that in a burst Kernels finish in the order they started instead of all late.
FINISHING_PRIORITY = 10
KERNEL_POOL_INDEX = "pool-ref"
POOL_WORKERS = 2


def kernel_pool_index(kernel: Obj) -> list[str]:
    """Index function for Kernels: ``namespace/pool`` of the KernelPool they name."""
    name = pool_ref(kernel)
    return [f"{meta(kernel).get('namespace', '')}/{name}"] if name else []


class ReconcileObserver(Protocol):
    """Told about each reconcile (controller-runtime metrics); called on worker threads."""

    def reconcile_started(self) -> None: ...

    def reconcile_done(self, *, result: str, seconds: float) -> None: ...


class NoReconcileObserver:
    def reconcile_started(self) -> None:
        pass

    def reconcile_done(self, *, result: str, seconds: float) -> None:
        pass


class KernelController:
    """Wires informers, the work queue, the reconciler and the workers."""

    def __init__(
        self,
        *,
        rest: RestClient,
        settings: ReconcileSettings,
        instance: str,
        events_rest: RestClient | None = None,
        namespaces: Sequence[str] = (),
        workers: int = 4,
        clock: Clock | None = None,
        queue_metrics: QueueMetrics | None = None,
        kernel_metrics: KernelMetrics | None = None,
        observer: ReconcileObserver | None = None,
        fresh: Callable[[], Fresh] = new_fresh,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        resync_period: float = 0.0,
        tracer: trace.Tracer | None = None,
        pools: bool = True,
        activation_key: bytes | None = None,
        activator: Activator | None = None,
        pool_queue_metrics: QueueMetrics | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self._clock = clock or RealClock()
        self._workers = workers
        self._observer = observer or NoReconcileObserver()
        self._tracer = tracer or trace.get_tracer("kernel-controller")
        # thread name -> monotonic start of the reconcile it runs (for stall detection)
        self.in_flight: dict[str, float] = {}  # single-key writes/deletes, GIL-atomic
        self.expectations = Expectations()
        self.reissued = ReissueLog()
        self.terminating = TerminatingNamespaces()

        def informer(
            resource: Resource,
            *,
            transform: Transform,
            label_selector: str = "",
            field_selector: str = "",
            indexers: dict[str, Callable[[Obj], list[str]]] | None = None,
            resync: float = 0.0,
        ) -> MultiNamespaceInformer:
            def make(namespace: str) -> SharedInformer:
                return SharedInformer(
                    name=f"{resource.plural}{'-' + namespace if namespace else ''}",
                    lister_watcher=ResourceClient(
                        rest,
                        resource,
                        namespace=namespace or None,
                        label_selector=label_selector,
                        field_selector=field_selector,
                    ),
                    transform=transform,
                    indexers=indexers,
                    resync_period=resync,
                    clock=self._clock,
                )

            return MultiNamespaceInformer(namespaces=namespaces, factory=make)

        self.kernels = informer(
            KERNELS,
            transform=strip_kernel,
            resync=resync_period,
            # which Kernels a namespace still has (terminating namespaces are forgotten once
            # their last Kernel is gone)
            indexers={NAMESPACE_INDEX: namespace_index, KERNEL_POOL_INDEX: kernel_pool_index},
        )
        self.pods = informer(
            PODS,
            transform=strip_pod,
            label_selector=NAME_LABEL,
            # a Pod claimed from a pool is not named like its Kernel
            indexers={KERNEL_POD_INDEX: kernel_pod_index},
        )
        # Warm pools (SPEC §13), when the KernelPool CRD is served: the pools, and every Pod
        # a pool started (standby or claimed; a claimed one is in both Pod caches).
        self.pools = informer(POOLS, transform=strip_pool) if pools else None
        self.pool_pods = (
            informer(
                PODS,
                transform=strip_pod,
                label_selector=POOL_LABEL,
                indexers={POOL_INDEX: pool_index},
            )
            if pools
            else None
        )
        self.services = informer(SERVICES, transform=strip_service, label_selector=NAME_LABEL)
        self.warnings = (
            informer(
                EVENTS,
                transform=strip_event,
                field_selector=POD_WARNINGS_SELECTOR,
                indexers={INVOLVED_INDEX: involved_object_index},
            )
            if settings.reissue_pod_events
            else None
        )
        # Namespaces are cluster-scoped: only a controller serving all of them watches them.
        self.namespace_informer = (
            None if namespaces else informer(NAMESPACES, transform=strip_namespace)
        )
        self.queue: RateLimitingQueue[str] = RateLimitingQueue(
            name=CONTROLLER_NAME,
            clock=self._clock,
            rate_limiter=default_controller_rate_limiter(self._clock),
            metrics=queue_metrics,
        )
        self.pool_queue: RateLimitingQueue[str] = RateLimitingQueue(
            name=POOL_CONTROLLER_NAME,
            clock=self._clock,
            rate_limiter=default_controller_rate_limiter(self._clock),
            metrics=pool_queue_metrics,
        )
        self._pool_workers = min(POOL_WORKERS, workers) if pools else 0
        # Events may go through their own client (own QPS budget) so that a burst of them
        # never delays the writes that create kernels.
        self.recorder = EventRecorder(
            ResourceClient(events_rest or rest, EVENTS),
            instance=instance,
            terminating=self.terminating,
        )
        pods_client, secrets_client = ResourceClient(rest, PODS), ResourceClient(rest, SECRETS)
        claims = self._claims = (
            PoolClaims(
                pods=pods_client,
                secrets=secrets_client,
                activator=activator or HttpActivator(),
                activation_key=activation_key,
                activation_port=settings.activation_port,
                on_done=self._activation_done,
            )
            if pools
            else None
        )
        applier = Applier(
            clients=Clients(
                kernels=ResourceClient(rest, KERNELS),
                pods=pods_client,
                services=ResourceClient(rest, SERVICES),
                secrets=secrets_client,
            ),
            recorder=self.recorder,
            expectations=self.expectations,
            metrics=kernel_metrics,
            on_reissued=self.reissued.mark,
            occurrences=self.reissued.new_occurrences,
            terminating=self.terminating,
            claims=claims,
        )
        self.reconciler = KernelReconciler(
            kernels=self.kernels,
            pods=self.pods,
            services=self.services,
            warnings=self.warnings,
            applier=applier,
            settings=settings,
            reissued=self.reissued,
            fresh=fresh,
            wall_clock=wall_clock,
            pools=self.pools,
            pool_pods=self.pool_pods,
            activations=claims.activated_for if claims is not None else None,
        )
        key = activation_key

        def token_for(namespace: str, pod_name: str) -> str:
            assert key is not None
            return activation_token(key, namespace=namespace, pod_name=pod_name)

        self.pool_reconciler = (
            PoolReconciler(
                pools=self.pools,
                pods=self.pool_pods,
                clients=PoolClients(
                    pools=ResourceClient(rest, POOLS), pods=pods_client, secrets=secrets_client
                ),
                settings=settings,
                recorder=self.recorder,
                token_for=token_for if key is not None else None,
                wall_clock=wall_clock,
                activated=self._activated,
            )
            if self.pools is not None and self.pool_pods is not None
            else None
        )
        self._register_handlers()
        self._threads: list[threading.Thread] = []

    @property
    def informers(self) -> list[MultiNamespaceInformer]:
        found = [self.kernels, self.pods, self.services]
        optional = (self.warnings, self.namespace_informer, self.pools, self.pool_pods)
        return found + [informer for informer in optional if informer is not None]

    @property
    def queues(self) -> list[RateLimitingQueue[str]]:
        return [self.queue, self.pool_queue] if self._pool_workers else [self.queue]

    def idle_by_pool(self) -> dict[tuple[str, str], int]:
        """Idle, Ready standby kernels per ``(namespace, pool)`` (every cached pool, zeros
        included), read from the caches (for ``kernel_pool_idle``)."""
        if self.pools is None or self.pool_pods is None:
            return {}
        counts: dict[tuple[str, str], int] = {}
        for pool in self.pools.list():
            m = meta(pool)
            key = f"{m.get('namespace', '')}/{m.get('name', '')}"
            pods = self.pool_pods.by_index(POOL_INDEX, key)
            counts[(str(m.get("namespace", "")), str(m.get("name", "")))] = len(
                idle_candidates(pool, pods)
            )
        return counts

    # ---------------------------------------------------------------- handlers
    def _register_handlers(self) -> None:
        self.kernels.add_event_handler(
            FuncHandler(add=self._kernel_added, update=self._kernel_updated, delete=self._gone)
        )
        for kind, informer in ((POD, self.pods), (SERVICE, self.services)):
            informer.add_event_handler(self._child_handler(kind))
        if self.namespace_informer is not None:
            self.namespace_informer.add_event_handler(
                FuncHandler(
                    add=lambda ns, _: self._namespace_seen(ns),
                    update=lambda _, ns: self._namespace_seen(ns),
                    delete=self._namespace_gone,
                )
            )
        if self.pools is not None and self.pool_pods is not None:
            self.pools.add_event_handler(
                FuncHandler(
                    add=self._pool_added,
                    update=self._pool_updated,
                    delete=lambda obj: self.pool_queue.add(_key_of(obj)),
                )
            )
            self.pool_pods.add_event_handler(
                FuncHandler(
                    add=lambda pod, initial: self._pool_pod_seen(pod, initial=initial),
                    update=lambda old, new: self._pool_pod_seen(new, initial=_resync(old, new)),
                    delete=lambda obj: self._pool_pod_seen(_unwrap(obj), initial=False),
                )
            )
        if self.warnings is not None:
            self.warnings.add_event_handler(
                FuncHandler(
                    add=lambda event, initial: self._warning_seen(event, initial=initial),
                    update=lambda old, new: self._warning_seen(new, initial=_resync(old, new)),
                )
            )

    def _pool_added(self, pool: Obj, initial: bool) -> None:
        key = str(object_key(pool))
        self.pool_queue.add(key, priority=_priority(initial))
        # Kernels that named the pool before it existed (PoolNotFound) can start now.
        for kernel in self.kernels.by_index(KERNEL_POOL_INDEX, key):
            self.queue.add(str(object_key(kernel)), priority=_priority(initial))

    def _pool_updated(self, old: Obj, new: Obj) -> None:
        before, after = meta(old), meta(new)
        if (
            before.get("resourceVersion") != after.get("resourceVersion")
            and before.get("generation") == after.get("generation")
            and before.get("deletionTimestamp") == after.get("deletionTimestamp")
        ):
            return  # our own status write
        self.pool_queue.add(str(object_key(new)), priority=_priority(_resync(old, new)))

    def _activation_done(self, kernel: Obj, pod: Obj) -> None:
        """An activation ended: the Kernel's next pass turns it Ready (or raises the failure),
        and its pool may refill (it waits while its claims are being activated)."""
        self.queue.add(str(object_key(kernel)), priority=FINISHING_PRIORITY)
        for key in pool_index(pod):
            self.pool_queue.add(key)

    def _activated(self, pod: Obj) -> bool:
        """Whether the claimed ``pod``'s kernel is known activated, from its Kernel's status
        in the cache or this process's memory."""
        keys = kernel_pod_index(pod)
        kernel = self.kernels.get(keys[0]) if keys else None
        recorded = self._claims.activated_for(pod) if self._claims is not None else None
        return activation_of(pod, kernel, recorded) is not None

    def _pool_pod_seen(self, pod: Obj, *, initial: bool) -> None:
        for key in pool_index(pod):
            self.pool_queue.add(key, priority=_priority(initial))

    def _kernel_added(self, kernel: Obj, initial: bool) -> None:
        self.queue.add(str(object_key(kernel)), priority=_priority(initial))

    def _kernel_updated(self, old: Obj, new: Obj) -> None:
        # Our own status writes come back as updates: skip those that change nothing we read.
        before, after = meta(old), meta(new)
        if (
            before.get("resourceVersion") != after.get("resourceVersion")
            and before.get("generation") == after.get("generation")
            and before.get("labels") == after.get("labels")
            and before.get("annotations") == after.get("annotations")
            and before.get("deletionTimestamp") == after.get("deletionTimestamp")
        ):
            return
        self.queue.add(str(object_key(new)), priority=_priority(_resync(old, new)))

    def _gone(self, obj: Obj | DeletedFinalStateUnknown) -> None:
        kernel = obj.obj if isinstance(obj, DeletedFinalStateUnknown) else obj
        key = str(object_key(kernel))
        self.expectations.observed(POD, key)
        self.expectations.observed(SERVICE, key)
        namespace = meta(kernel).get("namespace", "")
        if namespace in self.terminating and not self.kernels.by_index(NAMESPACE_INDEX, namespace):
            self.terminating.forget(namespace, why="it has no Kernel left")

    def _namespace_seen(self, namespace: Obj) -> None:
        terminating = meta(namespace).get("deletionTimestamp") or (
            (namespace.get("status") or {}).get("phase") == "Terminating"
        )
        if terminating:
            self.terminating.mark(str(meta(namespace).get("name", "")))

    def _namespace_gone(self, obj: Obj | DeletedFinalStateUnknown) -> None:
        namespace = obj.obj if isinstance(obj, DeletedFinalStateUnknown) else obj
        name = str(meta(namespace).get("name", ""))
        # Its Kernels' deletions may reach us after the Namespace's (another watch): until the
        # last is gone (``_gone`` forgets it then) a pass for one of them must not create.
        if self.kernels.by_index(NAMESPACE_INDEX, name):
            self.terminating.mark(name)
        else:
            self.terminating.forget(name, why="it is gone")

    def _child_handler(self, kind: str) -> FuncHandler:
        def key_of(obj: Obj) -> str | None:
            keys = kernel_pod_index(obj)  # the Kernel's name label, on Pods and Services
            return keys[0] if keys else None

        def seen(obj: Obj, *, initial: bool) -> None:
            key = key_of(obj)
            if key is not None:
                self.expectations.observed(kind, key)
                self.queue.add(key, priority=_priority(initial))

        def deleted(obj: Obj | DeletedFinalStateUnknown) -> None:
            child = obj.obj if isinstance(obj, DeletedFinalStateUnknown) else obj
            key = key_of(child)
            if key is not None:
                self.queue.add(key)

        return FuncHandler(
            add=lambda obj, initial: seen(obj, initial=initial),
            update=lambda old, new: seen(new, initial=_resync(old, new)),
            delete=deleted,
        )

    def _warning_seen(self, event: Obj, *, initial: bool) -> None:
        for key in involved_object_index(event):
            if self.kernels.get(key) is not None and not self.reissued.is_done(event):
                self.queue.add(key, priority=_priority(initial))

    # --------------------------------------------------------------- lifecycle
    def start(self) -> None:
        """Start the informers and the event recorder (returns at once)."""
        self.recorder.start()
        for informer in self.informers:
            informer.start()

    def wait_for_sync(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        for informer in self.informers:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not informer.wait_for_sync(left):
                return False
        return True

    def has_synced(self) -> bool:
        return all(informer.has_synced() for informer in self.informers)

    def start_workers(self) -> None:
        """Start the workers; call only after the caches have synced."""
        # Each thread is listed once started: /healthz reads the list meanwhile, and a listed
        # thread that is not alive counts as dead.
        for n in range(self._workers):
            thread = threading.Thread(target=self._work, name=f"kernel-worker-{n}")
            thread.start()
            self._threads.append(thread)
        for n in range(self._pool_workers):
            thread = threading.Thread(target=self._work_pools, name=f"kernelpool-worker-{n}")
            thread.start()
            self._threads.append(thread)

    def stop_workers(self, *, drain_timeout: float) -> bool:
        """Stop taking work and wait (at most ``drain_timeout``) for reconciles in flight.

        With ``drain_timeout`` 0 the workers stop after their current reconcile, unwaited.
        Returns False when reconciles were still running at the deadline.
        """
        if self._claims is not None:
            self._claims.stop(wait=False)  # activations under way end on their own
        if drain_timeout <= 0:
            self.queue.shut_down()
            self.pool_queue.shut_down()
            return not self.in_flight
        deadline = time.monotonic() + drain_timeout
        self.pool_queue.shut_down()  # pools refill on the next leader: no need to drain
        drained = self.queue.shut_down_with_drain(timeout=drain_timeout)
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return drained

    def stop(self, *, drain_timeout: float = 10.0) -> bool:
        """Stop the workers (draining, bounded), then the informers; join everything."""
        drained = self.stop_workers(drain_timeout=drain_timeout)
        if self._claims is not None:
            self._claims.stop(wait=True)
        self.recorder.stop()
        for informer in self.informers:
            informer.stop()
        for informer in self.informers:
            informer.join()
        for thread in self._threads:
            thread.join(drain_timeout)
        return drained

    def threads_alive(self) -> bool:
        workers_ok = all(t.is_alive() for t in self._threads) or self.queue.shutting_down()
        return workers_ok and all(i.threads_alive() for i in self.informers)

    def stalled_workers(self, threshold: float) -> list[str]:
        """Workers whose current reconcile has run longer than ``threshold`` seconds."""
        now = time.monotonic()
        return [name for name, since in list(self.in_flight.items()) if now - since > threshold]

    # ------------------------------------------------------------------ worker
    def _work(self) -> None:
        while True:
            key, priority, shutdown = self.queue.get_with_priority()
            if shutdown or key is None:
                return
            try:
                self._process(key, priority)
            finally:
                self.queue.done(key)

    def _work_pools(self) -> None:
        while True:
            key, priority, shutdown = self.pool_queue.get_with_priority()
            if shutdown or key is None:
                return
            try:
                self._process_pool(key, priority)
            finally:
                self.pool_queue.done(key)

    def _process_pool(self, key: str, priority: int) -> None:
        assert self.pool_reconciler is not None
        thread = threading.current_thread().name
        self.in_flight[thread] = time.monotonic()
        namespace, _, name = key.partition("/")
        with self._tracer.start_as_current_span(
            "reconcile",
            attributes={
                "k8s.namespace.name": namespace,
                "k8s.kernelpool.name": name,
                "controller": POOL_CONTROLLER_NAME,
            },
        ) as span:
            try:
                outcome: Result = self.pool_reconciler.reconcile(key)
            except TransientError as err:
                log.warning("pool reconcile failed, will retry: %s", err)
                self.pool_queue.add_rate_limited(key, priority=priority)
                span.set_status(trace.StatusCode.ERROR, str(err))
            except Exception as err:
                log.exception("pool reconcile crashed")
                self.pool_queue.add_rate_limited(key, priority=priority)
                span.set_status(trace.StatusCode.ERROR, type(err).__name__)
            else:
                self.pool_queue.forget(key)
                if outcome.requeue_after is not None:
                    self.pool_queue.add_after(key, outcome.requeue_after, priority=priority)
            finally:
                self.in_flight.pop(thread, None)

    def _process(self, key: str, priority: int) -> None:
        rid = uuid.uuid4().hex[:12]
        key_token = context.kernel_key.set(key)
        rid_token = context.reconcile_id.set(rid)
        namespace, _, name = key.partition("/")
        thread = threading.current_thread().name
        self.in_flight[thread] = time.monotonic()
        self._observer.reconcile_started()
        started = time.monotonic()
        result = "error"
        with self._tracer.start_as_current_span(
            "reconcile",
            attributes={
                "k8s.namespace.name": namespace,
                "k8s.kernel.name": name,
                "reconcile.id": rid,
                "controller": CONTROLLER_NAME,
            },
        ) as span:
            try:
                outcome = self.reconciler.reconcile(key)
            except TransientError as err:
                log.warning("reconcile failed, will retry: %s", err)
                self.queue.add_rate_limited(key, priority=priority)
                span.set_status(trace.StatusCode.ERROR, str(err))
            except TerminalError as err:
                log.error("reconcile failed until the Kernel changes: %s", err)
                self.queue.forget(key)
                span.set_status(trace.StatusCode.ERROR, str(err))
            except Exception as err:
                log.exception("reconcile crashed")
                self.queue.add_rate_limited(key, priority=priority)
                span.set_status(trace.StatusCode.ERROR, type(err).__name__)
            else:
                self.queue.forget(key)
                if outcome.requeue_after is not None:
                    self.queue.add_after(key, outcome.requeue_after, priority=priority)
                    result = "requeue_after"
                else:
                    result = "success"
            finally:
                span.set_attribute("reconcile.result", result)
                self.in_flight.pop(thread, None)
                self._observer.reconcile_done(result=result, seconds=time.monotonic() - started)
                log.debug(
                    "reconciled",
                    extra={"result": result, "seconds": round(time.monotonic() - started, 4)},
                )
                context.reconcile_id.reset(rid_token)
                context.kernel_key.reset(key_token)


def _unwrap(obj: Obj | DeletedFinalStateUnknown) -> Obj:
    return obj.obj if isinstance(obj, DeletedFinalStateUnknown) else obj


def _key_of(obj: Obj | DeletedFinalStateUnknown) -> str:
    return str(object_key(_unwrap(obj)))


def _priority(low: bool) -> int:
    return LOW_PRIORITY if low else NORMAL_PRIORITY


def _resync(old: Obj, new: Obj) -> bool:
    """An update that changes nothing (a resync replays the cache): low priority."""
    return old is new or meta(old).get("resourceVersion") == meta(new).get("resourceVersion")
