"""Prometheus metrics of kernel-controller (SPEC §5), on a registry the caller owns.

Contract:

- :class:`ControllerMetrics` registers every metric on the ``CollectorRegistry`` it is given
  (never the default registry), with the names and label sets of controller-runtime and
  client-go so existing dashboards and alerts work: ``controller_runtime_*{controller}``,
  ``workqueue_*{name}``, ``rest_client_requests_total{code,method,host}``,
  ``rest_client_request_duration_seconds{verb,host}``, ``leader_election_master_status{name}``;
  plus the domain ``kernel_*`` metrics and informer health ``informer_*{informer}``.
- Its adapters implement ``informers.QueueMetrics``, ``informers.RequestObserver``,
  ``reconcilers.controller.ReconcileObserver`` and ``reconcilers.apply.KernelMetrics``.
- :meth:`~ControllerMetrics.watch_caches` adds a collector that reads the informer caches at
  scrape time, never the API: ``kernel_running{namespace}``, ``kernels{namespace,phase}`` and
  ``informer_objects`` / ``informer_relists_total`` / ``informer_watch_restarts_total`` /
  ``informer_watch_errors_total`` per informer. On every scrape it also calls
  ``update_unfinished_work()`` on the watched queues before the two unfinished-work gauges are
  read (client-go refreshes them every 500 ms; here a scrape is what needs them fresh).
- ``kernels{namespace,phase}``: the phase is the Kernel's ``status.phase`` (mirrored from its
  Pod). A Kernel without one has no Pod status yet and counts as ``Pending``; a value outside
  Pending/Running/Succeeded/Failed/Unknown counts as ``Unknown``. Every namespace that has a
  Kernel shows all five phases (zeros included), so a phase that empties drops to 0 instead of
  vanishing; a namespace with no Kernel left has no series. ``kernel_running`` is the
  ``Running`` count.
- Labels stay bounded: namespaces, phases, informer and queue names, HTTP methods and codes,
  reconcile results; never a Kernel name or key. A reconcile result outside
  success/error/requeue/requeue_after is counted as ``error`` rather than raising on a worker.
- ``rest_client_*``: ``code`` is the HTTP status as a string, ``<error>`` when no answer came
  (``code == 0``), as client-go; ``verb`` on the duration is the HTTP method, as client-go
  labels it; ``host`` is ``host:port`` of the API server URL given to the constructor.
- prometheus_client adds ``*_created`` samples to counters and histograms unless
  ``prometheus_client.disable_created_metrics()`` is called; that is process-wide, so it is
  left to the process entry point.

Threads: every method and adapter may be called from any thread (prometheus_client metrics
are thread-safe). The queue hooks run under the queue's lock and only touch metric objects.
A scrape (``registry.collect()``) runs on the HTTP server's thread; it takes each queue's
lock briefly and copies the cached Kernels through the informers' thread-safe reads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from informers import QueueMetrics, ReflectorStats, RequestObserver
from reconcilers.apply import KernelMetrics
from reconcilers.controller import ReconcileObserver

RECONCILE_RESULTS = ("success", "error", "requeue", "requeue_after")
KERNEL_PHASES = ("Pending", "Running", "Succeeded", "Failed", "Unknown")
PHASE_WITHOUT_STATUS = "Pending"
# controller-runtime's controller_runtime_reconcile_time_seconds buckets.
RECONCILE_BUCKETS = (
    *(0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5),
    *(0.6, 0.7, 0.8, 0.9, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0),
    *(6.0, 7.0, 8.0, 9.0, 10.0, 15.0, 20.0, 25.0, 30.0, 40.0, 50.0, 60.0),
)
# client-go's workqueue duration buckets: prometheus.ExponentialBuckets(10e-9, 10, 10).
WORKQUEUE_BUCKETS = (1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)
# client-go's rest_client_request_duration_seconds buckets.
REST_CLIENT_BUCKETS = (0.005, 0.025, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0)
# Kernel creation to first Ready=True: a warm pool's claim takes a fraction of a second, image
# pulls make minutes normal for a cold start.
KERNEL_STARTUP_BUCKETS = (
    *(0.1, 0.25, 0.5),
    *(1, 2, 5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 240, 300, 450, 600),
)
STARTUP_SOURCES = ("pool", "cold")
CLAIM_RESULTS = ("hit", "miss")


class CacheReader(Protocol):
    """What the scrape-time collector reads; ``informers.MultiNamespaceInformer`` has it."""

    def list(self) -> Sequence[Mapping[str, Any]]: ...

    def count(self) -> int: ...

    def stats(self) -> Sequence[ReflectorStats]: ...


class UnfinishedWorkReporter(Protocol):
    """A work queue (``informers.WorkQueue`` and subclasses) as the collector uses it."""

    def update_unfinished_work(self) -> None: ...


class ControllerMetrics:
    """Every metric of SPEC §5 on ``registry``; hand its adapters to the components."""

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        controller: str = "kernel",
        host: str,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._registry = registry
        self.controller = controller
        self.host = urlsplit(host).netloc or host
        self.wall_clock = wall_clock
        self._lock = threading.Lock()
        self._caches_watched = False  # guarded by _lock

        def counter(name: str, doc: str, *labels: str) -> Counter:
            return Counter(name, doc, labels, registry=registry)

        def gauge(name: str, doc: str, *labels: str) -> Gauge:
            return Gauge(name, doc, labels, registry=registry)

        def histogram(name: str, doc: str, buckets: Sequence[float], *labels: str) -> Histogram:
            return Histogram(name, doc, labels, buckets=buckets, registry=registry)

        cr = "controller_runtime_"
        self.reconcile_total = counter(
            f"{cr}reconcile_total", "Total number of reconciliations", "controller", "result"
        )
        self.reconcile_errors = counter(
            f"{cr}reconcile_errors_total", "Total number of reconciliation errors", "controller"
        )
        self.reconcile_time = histogram(
            f"{cr}reconcile_time_seconds",
            "Length of time per reconciliation",
            RECONCILE_BUCKETS,
            "controller",
        )
        self.max_concurrent = gauge(
            f"{cr}max_concurrent_reconciles",
            "Maximum number of concurrent reconciles",
            "controller",
        )
        self.active_workers = gauge(
            f"{cr}active_workers", "Number of currently used workers", "controller"
        )
        for result in RECONCILE_RESULTS:
            self.reconcile_total.labels(controller, result)
        for metric in (self.reconcile_errors, self.max_concurrent, self.active_workers):
            metric.labels(controller)

        wq = "workqueue_"
        self.wq_depth = gauge(f"{wq}depth", "Current depth of workqueue", "name")
        self.wq_adds = counter(f"{wq}adds_total", "Total number of adds handled", "name")
        self.wq_queue_duration = histogram(
            f"{wq}queue_duration_seconds",
            "Seconds an item waits before being requested",
            WORKQUEUE_BUCKETS,
            "name",
        )
        self.wq_work_duration = histogram(
            f"{wq}work_duration_seconds",
            "Seconds processing an item takes",
            WORKQUEUE_BUCKETS,
            "name",
        )
        self.wq_retries = counter(f"{wq}retries_total", "Total number of retries", "name")
        # Not on the registry: _UnfinishedWorkCollector refreshes them, then exposes them.
        self.wq_unfinished = Gauge(
            f"{wq}unfinished_work_seconds",
            "Seconds of work in progress not yet observed by work_duration (stuck threads)",
            ["name"],
            registry=None,
        )
        self.wq_longest = Gauge(
            f"{wq}longest_running_processor_seconds",
            "Seconds the longest running processor has been running",
            ["name"],
            registry=None,
        )
        self._unfinished = _UnfinishedWorkCollector(self.wq_unfinished, self.wq_longest)
        registry.register(self._unfinished)

        self.rest_requests = counter(
            "rest_client_requests_total",
            "Number of HTTP requests by status code, method, host",
            "code",
            "method",
            "host",
        )
        self.rest_duration = histogram(
            "rest_client_request_duration_seconds",
            "Request latency in seconds by verb, host",
            REST_CLIENT_BUCKETS,
            "verb",
            "host",
        )
        self.leader = gauge(
            "leader_election_master_status",
            "1 when this replica holds the lease 'name', else 0",
            "name",
        )

        self.kernel_create = counter("kernel_create_total", "Kernel Pods created", "namespace")
        self.kernel_create_failed = counter(
            "kernel_create_failed_total", "Kernel Pod creations that failed", "namespace"
        )
        self.kernel_culling = counter(
            "kernel_culling_total", "Kernels deleted after their kernel exited", "namespace"
        )
        self.last_culling = gauge(
            "last_kernel_culling_timestamp_seconds",
            "Unix time of the last Kernel culled",
            "namespace",
        )
        self.kernel_startup = histogram(
            "kernel_startup_seconds",
            "Time from Kernel creation to its first Ready=True, by where its kernel came from"
            " (pool: a claimed standby kernel; cold: a Pod started for it)",
            KERNEL_STARTUP_BUCKETS,
            "source",
        )
        self.pool_claims = counter(
            "kernel_pool_claims",
            "Kernels naming a warm pool: claimed an idle kernel (hit) or started cold (miss)",
            "result",
        )
        for source in STARTUP_SOURCES:
            self.kernel_startup.labels(source)
        for result in CLAIM_RESULTS:
            self.pool_claims.labels(result)

    def set_max_concurrent(self, n: int) -> None:
        """Set ``controller_runtime_max_concurrent_reconciles`` (the number of workers)."""
        self.max_concurrent.labels(self.controller).set(n)

    def set_leader(self, name: str, is_leader: bool) -> None:
        """Set ``leader_election_master_status{name}`` to 1 when leading, else 0."""
        self.leader.labels(name).set(1 if is_leader else 0)

    def queue_metrics(self, name: str) -> QueueMetrics:
        """The hooks of the work queue ``name``; its ``workqueue_*`` series start at 0."""
        return _QueueMetrics(self, name)

    def request_observer(self) -> RequestObserver:
        """The REST client observer behind ``rest_client_*``."""
        return _RequestObserver(self)

    def reconcile_observer(self) -> ReconcileObserver:
        """The worker observer behind ``controller_runtime_reconcile_*`` and active workers."""
        return _ReconcileObserver(self)

    def kernel_metrics(self) -> KernelMetrics:
        """The applier's domain hooks behind ``kernel_*_total`` and ``kernel_startup_seconds``."""
        return _KernelMetrics(self)

    def watch_caches(
        self,
        *,
        kernels: CacheReader,
        informers: Mapping[str, CacheReader],
        queues: Sequence[UnfinishedWorkReporter],
        pool_idle: Callable[[], Mapping[tuple[str, str], int]] | None = None,
    ) -> None:
        """Expose the caches at scrape time and refresh the queues' unfinished work; once.

        ``pool_idle`` (warm pools) gives the idle Ready kernels per ``(namespace, pool)``."""
        with self._lock:
            if self._caches_watched:
                raise RuntimeError("watch_caches() was already called")
            self._caches_watched = True
        self._unfinished.set_queues(queues)
        self._registry.register(
            _CacheCollector(kernels=kernels, informers=dict(informers), pool_idle=pool_idle)
        )


class _QueueMetrics:
    """``informers.QueueMetrics`` for one queue; called under the queue's lock."""

    def __init__(self, metrics: ControllerMetrics, name: str) -> None:
        self._depth = metrics.wq_depth.labels(name)
        self._adds = metrics.wq_adds.labels(name)
        self._queue_duration = metrics.wq_queue_duration.labels(name)
        self._work_duration = metrics.wq_work_duration.labels(name)
        self._retries = metrics.wq_retries.labels(name)
        self._unfinished = metrics.wq_unfinished.labels(name)
        self._longest = metrics.wq_longest.labels(name)

    def add(self) -> None:
        self._adds.inc()
        self._depth.inc()

    def get(self, queued_seconds: float) -> None:
        self._depth.dec()
        self._queue_duration.observe(queued_seconds)

    def done(self, work_seconds: float) -> None:
        self._work_duration.observe(work_seconds)

    def retry(self) -> None:
        self._retries.inc()

    def set_unfinished_work(
        self, *, unfinished_seconds: float, longest_running_seconds: float
    ) -> None:
        self._unfinished.set(unfinished_seconds)
        self._longest.set(longest_running_seconds)


class _RequestObserver:
    def __init__(self, metrics: ControllerMetrics) -> None:
        self._metrics = metrics

    def request_done(
        self, *, method: str, verb: str, resource: str, code: int, seconds: float
    ) -> None:
        m = self._metrics
        code_label = str(code) if code else "<error>"
        m.rest_requests.labels(code_label, method, m.host).inc()
        m.rest_duration.labels(method, m.host).observe(seconds)


class _ReconcileObserver:
    def __init__(self, metrics: ControllerMetrics) -> None:
        controller = metrics.controller
        self._total = {r: metrics.reconcile_total.labels(controller, r) for r in RECONCILE_RESULTS}
        self._active = metrics.active_workers.labels(controller)
        self._errors = metrics.reconcile_errors.labels(controller)
        self._time = metrics.reconcile_time.labels(controller)

    def reconcile_started(self) -> None:
        self._active.inc()

    def reconcile_done(self, *, result: str, seconds: float) -> None:
        self._active.dec()
        if result not in RECONCILE_RESULTS:
            result = "error"
        self._total[result].inc()
        if result == "error":
            self._errors.inc()
        self._time.observe(seconds)


class _KernelMetrics:
    def __init__(self, metrics: ControllerMetrics) -> None:
        self._metrics = metrics

    def kernel_created(self, namespace: str) -> None:
        self._metrics.kernel_create.labels(namespace).inc()

    def kernel_create_failed(self, namespace: str) -> None:
        self._metrics.kernel_create_failed.labels(namespace).inc()

    def kernel_culled(self, namespace: str) -> None:
        self._metrics.kernel_culling.labels(namespace).inc()
        self._metrics.last_culling.labels(namespace).set(self._metrics.wall_clock())

    def kernel_ready(self, namespace: str, seconds: float, source: str) -> None:
        label = source if source in STARTUP_SOURCES else "cold"
        self._metrics.kernel_startup.labels(label).observe(max(0.0, seconds))

    def pool_claim(self, result: str) -> None:
        self._metrics.pool_claims.labels(result if result in CLAIM_RESULTS else "miss").inc()


class _UnfinishedWorkCollector:
    """Refreshes the queues' unfinished work, then exposes the two gauges."""

    def __init__(self, unfinished: Gauge, longest: Gauge) -> None:
        self._gauges = (unfinished, longest)
        self._lock = threading.Lock()
        self._queues: tuple[UnfinishedWorkReporter, ...] = ()  # guarded by _lock

    def set_queues(self, queues: Sequence[UnfinishedWorkReporter]) -> None:
        with self._lock:
            self._queues = tuple(queues)

    def describe(self) -> Iterable[Metric]:
        for gauge in self._gauges:
            yield from gauge.describe()

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            queues = self._queues
        for queue in queues:
            queue.update_unfinished_work()
        for gauge in self._gauges:
            yield from gauge.collect()


class _CacheCollector:
    """Kernel and informer metrics computed from the caches on each scrape."""

    def __init__(
        self,
        *,
        kernels: CacheReader,
        informers: dict[str, CacheReader],
        pool_idle: Callable[[], Mapping[tuple[str, str], int]] | None,
    ) -> None:
        self._kernels = kernels
        self._informers = informers
        self._pool_idle = pool_idle

    def describe(self) -> Iterable[Metric]:
        return self._families(kernels=(), informers={}, pools={})

    def collect(self) -> Iterable[Metric]:
        return self._families(
            kernels=self._kernels.list(),
            informers=self._informers,
            pools=self._pool_idle() if self._pool_idle is not None else {},
        )

    @staticmethod
    def _families(
        *,
        kernels: Iterable[Mapping[str, Any]],
        informers: Mapping[str, CacheReader],
        pools: Mapping[tuple[str, str], int],
    ) -> list[Metric]:
        running = GaugeMetricFamily(
            "kernel_running", "Kernels whose Pod is Running, from the cache", labels=["namespace"]
        )
        phases = GaugeMetricFamily(
            "kernels", "Kernels by status.phase, from the cache", labels=["namespace", "phase"]
        )
        counts: dict[str, dict[str, int]] = {}
        for kernel in kernels:
            namespace = str((kernel.get("metadata") or {}).get("namespace") or "")
            phase = (kernel.get("status") or {}).get("phase") or PHASE_WITHOUT_STATUS
            per_phase = counts.setdefault(namespace, dict.fromkeys(KERNEL_PHASES, 0))
            per_phase[phase if phase in KERNEL_PHASES else "Unknown"] += 1
        for namespace, per_phase in sorted(counts.items()):
            running.add_metric([namespace], per_phase["Running"])
            for phase, n in per_phase.items():
                phases.add_metric([namespace, phase], n)

        inf = ["informer"]
        objects = GaugeMetricFamily("informer_objects", "Objects in the cache", labels=inf)
        relists = CounterMetricFamily("informer_relists", "Lists after the first", labels=inf)
        restarts = CounterMetricFamily(
            "informer_watch_restarts", "Watches opened after the first", labels=inf
        )
        errors = CounterMetricFamily(
            "informer_watch_errors", "Watches broken by a connection error", labels=inf
        )
        for name, informer in sorted(informers.items()):
            stats = informer.stats()
            objects.add_metric([name], informer.count())
            relists.add_metric([name], sum(s.relists for s in stats))
            restarts.add_metric([name], sum(s.watch_restarts for s in stats))
            errors.add_metric([name], sum(s.watch_errors for s in stats))
        idle = GaugeMetricFamily(
            "kernel_pool_idle",
            "Idle, Ready standby kernels of each warm pool, from the cache",
            labels=["namespace", "pool"],
        )
        for (namespace, pool), n in sorted(pools.items()):
            idle.add_metric([namespace, pool], n)
        return [running, phases, objects, relists, restarts, errors, idle]
