"""ControllerMetrics: every SPEC §5 metric, read back from the text exposition of its own
registry after driving each adapter (no cluster)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from informers import FakeClock, ItemExponentialFailureRateLimiter, RateLimitingQueue
from informers import ReflectorStats as Stats
from kernel_controller.metrics import (
    KERNEL_STARTUP_BUCKETS,
    RECONCILE_BUCKETS,
    REST_CLIENT_BUCKETS,
    WORKQUEUE_BUCKETS,
    ControllerMetrics,
)

HOST = "https://10.0.0.1:6443"
WALL = 1_700_000_000.0
Labels = frozenset[tuple[str, str]]


@dataclass
class Scrape:
    """One parsed exposition: family types and sample values by name and label set."""

    types: dict[str, str] = field(default_factory=dict)
    samples: dict[tuple[str, Labels], float] = field(default_factory=dict)

    def value(self, metric: str, /, **labels: str) -> float:
        return self.samples[(metric, frozenset(labels.items()))]

    def has(self, metric: str, /, **labels: str) -> bool:
        return (metric, frozenset(labels.items())) in self.samples

    def series(self, name: str) -> dict[Labels, float]:
        return {lbl: v for (n, lbl), v in self.samples.items() if n == name}

    def buckets(self, metric: str, /, **labels: str) -> dict[float, float]:
        """Cumulative bucket counts by upper bound (``le``) of one histogram series."""
        want = set(labels.items())
        found: dict[float, float] = {}
        for lbl, value in self.series(f"{metric}_bucket").items():
            rest = dict(lbl)
            le = rest.pop("le")
            if set(rest.items()) == want:
                found[float(le)] = value
        return found


def scrape(registry: CollectorRegistry) -> Scrape:
    result = Scrape()
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        result.types[family.name] = family.type
        for sample in family.samples:
            result.samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return result


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metrics(registry: CollectorRegistry) -> ControllerMetrics:
    return ControllerMetrics(registry, host=HOST, wall_clock=lambda: WALL)


def test_controller_runtime_series_exist_at_zero_before_any_reconcile(
    registry: CollectorRegistry, metrics: ControllerMetrics
) -> None:
    got = scrape(registry)
    for result in ("success", "error", "requeue", "requeue_after"):
        assert (
            got.value("controller_runtime_reconcile_total", controller="kernel", result=result) == 0
        )
    assert got.value("controller_runtime_reconcile_errors_total", controller="kernel") == 0
    assert got.value("controller_runtime_active_workers", controller="kernel") == 0
    assert got.value("controller_runtime_max_concurrent_reconciles", controller="kernel") == 0
    assert got.types["controller_runtime_reconcile"] == "counter"
    assert got.types["controller_runtime_reconcile_errors"] == "counter"
    assert got.types["controller_runtime_reconcile_time_seconds"] == "histogram"
    assert got.types["controller_runtime_active_workers"] == "gauge"
    assert got.types["controller_runtime_max_concurrent_reconciles"] == "gauge"


def test_reconcile_observer_counts_results_errors_time_and_active_workers(
    registry: CollectorRegistry, metrics: ControllerMetrics
) -> None:
    observer = metrics.reconcile_observer()
    metrics.set_max_concurrent(4)
    observer.reconcile_started()
    observer.reconcile_started()
    got = scrape(registry)
    assert got.value("controller_runtime_active_workers", controller="kernel") == 2
    assert got.value("controller_runtime_max_concurrent_reconciles", controller="kernel") == 4

    observer.reconcile_done(result="error", seconds=0.2)
    observer.reconcile_done(result="requeue_after", seconds=3.0)
    observer.reconcile_started()
    observer.reconcile_done(result="success", seconds=0.01)
    got = scrape(registry)
    assert got.value("controller_runtime_active_workers", controller="kernel") == 0
    total = "controller_runtime_reconcile_total"
    assert got.value(total, controller="kernel", result="error") == 1
    assert got.value(total, controller="kernel", result="requeue_after") == 1
    assert got.value(total, controller="kernel", result="success") == 1
    assert got.value(total, controller="kernel", result="requeue") == 0
    assert got.value("controller_runtime_reconcile_errors_total", controller="kernel") == 1
    time_name = "controller_runtime_reconcile_time_seconds"
    assert got.value(f"{time_name}_count", controller="kernel") == 3
    assert got.value(f"{time_name}_sum", controller="kernel") == pytest.approx(3.21)
    buckets = got.buckets(time_name, controller="kernel")
    assert sorted(buckets) == [*RECONCILE_BUCKETS, math.inf]
    assert (buckets[0.01], buckets[0.15], buckets[0.2], buckets[2.5], buckets[3.0]) == (
        1,
        1,
        2,
        2,
        3,
    )


def test_an_unknown_reconcile_result_counts_as_an_error_without_a_new_label(
    registry: CollectorRegistry, metrics: ControllerMetrics
) -> None:
    observer = metrics.reconcile_observer()
    observer.reconcile_started()
    observer.reconcile_done(result="kernel-42", seconds=0.1)
    got = scrape(registry)
    results = {dict(lbl)["result"] for lbl in got.series("controller_runtime_reconcile_total")}
    assert results == {"success", "error", "requeue", "requeue_after"}
    assert got.value("controller_runtime_reconcile_errors_total", controller="kernel") == 1


def test_controller_label_comes_from_the_constructor(registry: CollectorRegistry) -> None:
    ControllerMetrics(registry, controller="other", host=HOST)
    got = scrape(registry)
    assert got.value("controller_runtime_active_workers", controller="other") == 0
    assert not got.has("controller_runtime_active_workers", controller="kernel")


def test_workqueue_metrics_from_a_real_rate_limiting_queue(
    registry: CollectorRegistry, metrics: ControllerMetrics
) -> None:
    clock = FakeClock()
    queue: RateLimitingQueue[str] = RateLimitingQueue(
        name="kernel",
        clock=clock,
        rate_limiter=ItemExponentialFailureRateLimiter(base_delay=1.0),
        metrics=metrics.queue_metrics("kernel"),
    )
    metrics.watch_caches(kernels=FakeInformer(), informers={}, queues=[queue])
    try:
        got = scrape(registry)
        for metric in ("workqueue_depth", "workqueue_adds_total", "workqueue_retries_total"):
            assert got.value(metric, name="kernel") == 0
        assert got.value("workqueue_unfinished_work_seconds", name="kernel") == 0
        assert got.value("workqueue_longest_running_processor_seconds", name="kernel") == 0
        for metric in ("workqueue_queue_duration_seconds", "workqueue_work_duration_seconds"):
            assert got.types[metric] == "histogram"
            assert sorted(got.buckets(metric, name="kernel")) == [*WORKQUEUE_BUCKETS, math.inf]
        assert got.types["workqueue_depth"] == "gauge"
        assert got.types["workqueue_adds"] == "counter"

        queue.add("ns/a")
        queue.add("ns/b")
        queue.add("ns/a")  # merged with the waiting one: not an add
        got = scrape(registry)
        assert got.value("workqueue_adds_total", name="kernel") == 2
        assert got.value("workqueue_depth", name="kernel") == 2

        clock.step(0.5)
        assert queue.get() == ("ns/a", False)
        clock.step(2.0)
        assert queue.get() == ("ns/b", False)
        clock.step(1.0)  # ns/a held 3 s, ns/b 1 s
        got = scrape(registry)
        assert got.value("workqueue_depth", name="kernel") == 0
        assert got.value("workqueue_queue_duration_seconds_count", name="kernel") == 2
        assert got.value("workqueue_queue_duration_seconds_sum", name="kernel") == 3.0
        assert got.value("workqueue_unfinished_work_seconds", name="kernel") == 4.0
        assert got.value("workqueue_longest_running_processor_seconds", name="kernel") == 3.0

        clock.step(1.0)  # refreshed on every scrape, no timer needed
        got = scrape(registry)
        assert got.value("workqueue_unfinished_work_seconds", name="kernel") == 6.0
        assert got.value("workqueue_longest_running_processor_seconds", name="kernel") == 4.0

        queue.done("ns/a")
        queue.add_rate_limited("ns/a")  # delayed 1 s on the fake clock: a retry, not yet an add
        got = scrape(registry)
        assert got.value("workqueue_retries_total", name="kernel") == 1
        assert got.value("workqueue_adds_total", name="kernel") == 2
        assert got.value("workqueue_work_duration_seconds_count", name="kernel") == 1
        assert got.value("workqueue_work_duration_seconds_sum", name="kernel") == 4.0
        assert got.buckets("workqueue_work_duration_seconds", name="kernel")[1.0] == 0
        assert got.buckets("workqueue_work_duration_seconds", name="kernel")[10.0] == 1
        assert got.value("workqueue_unfinished_work_seconds", name="kernel") == 2.0
        assert got.value("workqueue_longest_running_processor_seconds", name="kernel") == 2.0
    finally:
        queue.shut_down()


def test_rest_client_requests_by_code_method_host_and_duration_by_verb(
    registry: CollectorRegistry, metrics: ControllerMetrics
) -> None:
    observer = metrics.request_observer()
    observer.request_done(method="GET", verb="list", resource="pods", code=200, seconds=0.02)
    observer.request_done(method="GET", verb="get", resource="pods", code=200, seconds=0.2)
    observer.request_done(method="POST", verb="create", resource="pods", code=409, seconds=0.05)
    observer.request_done(method="PATCH", verb="patch", resource="kernels", code=0, seconds=9.0)
    got = scrape(registry)
    assert got.types["rest_client_requests"] == "counter"
    assert got.series("rest_client_requests_total") == {
        frozenset({"code": "200", "method": "GET", "host": "10.0.0.1:6443"}.items()): 2,
        frozenset({"code": "409", "method": "POST", "host": "10.0.0.1:6443"}.items()): 1,
        frozenset({"code": "<error>", "method": "PATCH", "host": "10.0.0.1:6443"}.items()): 1,
    }
    duration = "rest_client_request_duration_seconds"
    assert got.types[duration] == "histogram"
    assert got.value(f"{duration}_count", verb="GET", host="10.0.0.1:6443") == 2
    assert got.value(f"{duration}_count", verb="PATCH", host="10.0.0.1:6443") == 1
    assert not got.has(f"{duration}_count", verb="list", host="10.0.0.1:6443")
    buckets = got.buckets(duration, verb="GET", host="10.0.0.1:6443")
    assert sorted(buckets) == [*REST_CLIENT_BUCKETS, math.inf]
    assert (buckets[0.025], buckets[0.1], buckets[0.25]) == (1, 1, 2)


def test_host_without_a_scheme_is_used_as_is(registry: CollectorRegistry) -> None:
    observer = ControllerMetrics(registry, host="apiserver:443").request_observer()
    observer.request_done(method="GET", verb="get", resource="pods", code=404, seconds=0.1)
    got = scrape(registry)
    assert got.value("rest_client_requests_total", code="404", method="GET", host="apiserver:443")


def test_leader_election_master_status(
    registry: CollectorRegistry, metrics: ControllerMetrics
) -> None:
    metrics.set_leader("kernel-controller", True)
    got = scrape(registry)
    assert got.types["leader_election_master_status"] == "gauge"
    assert got.value("leader_election_master_status", name="kernel-controller") == 1
    metrics.set_leader("kernel-controller", False)
    assert scrape(registry).value("leader_election_master_status", name="kernel-controller") == 0


def test_kernel_domain_metrics(registry: CollectorRegistry, metrics: ControllerMetrics) -> None:
    hooks = metrics.kernel_metrics()
    hooks.kernel_created("team-a")
    hooks.kernel_created("team-a")
    hooks.kernel_created("team-b")
    hooks.kernel_create_failed("team-b")
    hooks.kernel_culled("team-a")
    hooks.kernel_ready("team-a", 42.0, "cold")
    hooks.kernel_ready("team-b", 0.4, "cold")
    hooks.kernel_ready("team-b", 0.2, "pool")
    hooks.pool_claim("hit")
    hooks.pool_claim("miss")
    hooks.pool_claim("hit")
    got = scrape(registry)
    assert got.value("kernel_create_total", namespace="team-a") == 2
    assert got.value("kernel_create_total", namespace="team-b") == 1
    assert got.value("kernel_create_failed_total", namespace="team-b") == 1
    assert not got.has("kernel_create_failed_total", namespace="team-a")
    assert got.value("kernel_culling_total", namespace="team-a") == 1
    assert got.value("last_kernel_culling_timestamp_seconds", namespace="team-a") == WALL
    assert got.types["kernel_startup_seconds"] == "histogram"
    assert got.value("kernel_startup_seconds_count", source="cold") == 2
    assert got.value("kernel_startup_seconds_sum", source="cold") == pytest.approx(42.4)
    buckets = got.buckets("kernel_startup_seconds", source="cold")
    assert sorted(buckets) == [*map(float, KERNEL_STARTUP_BUCKETS), math.inf]
    assert (buckets[0.25], buckets[0.5], buckets[30.0], buckets[45.0]) == (0, 1, 1, 2)
    pooled = got.buckets("kernel_startup_seconds", source="pool")
    assert (pooled[0.1], pooled[0.25], pooled[600.0]) == (0, 1, 1)
    assert got.value("kernel_pool_claims_total", result="hit") == 2
    assert got.value("kernel_pool_claims_total", result="miss") == 1


def test_pool_series_exist_before_any_pool(
    registry: CollectorRegistry, metrics: ControllerMetrics
) -> None:
    got = scrape(registry)
    assert got.value("kernel_pool_claims_total", result="hit") == 0
    assert got.value("kernel_pool_claims_total", result="miss") == 0
    assert got.value("kernel_startup_seconds_count", source="pool") == 0
    assert got.value("kernel_startup_seconds_count", source="cold") == 0


@dataclass
class FakeInformer:
    """A test double of our MultiNamespaceInformer's read side (list, count, stats)."""

    objects: list[Mapping[str, Any]] = field(default_factory=list)
    per_namespace_stats: list[Stats] = field(default_factory=list)

    def list(self) -> Sequence[Mapping[str, Any]]:
        return list(self.objects)

    def count(self) -> int:
        return len(self.objects)

    def stats(self) -> Sequence[Stats]:
        return self.per_namespace_stats


def kernel(namespace: str, name: str, phase: str | None = None) -> dict[str, Any]:
    obj: dict[str, Any] = {"metadata": {"namespace": namespace, "name": name}}
    if phase is not None:
        obj["status"] = {"phase": phase}
    return obj


def test_cache_collector_counts_kernels_by_phase_and_informer_health(
    registry: CollectorRegistry, metrics: ControllerMetrics
) -> None:
    kernels = FakeInformer(
        objects=[
            kernel("a", "k1", "Running"),
            kernel("a", "k2", "Running"),
            kernel("a", "k3"),  # no status yet: Pending
            {"metadata": {"namespace": "a", "name": "k4"}, "status": {}},  # Pending
            kernel("a", "k5", "Bogus"),  # outside the Pod phases: Unknown
            kernel("b", "k6", "Failed"),
        ],
        per_namespace_stats=[
            Stats(lists=2, relists=1, watch_restarts=3, watch_errors=1),
            Stats(lists=1, relists=0, watch_restarts=2, watch_errors=0),
        ],
    )
    pods = FakeInformer(objects=[{}, {}], per_namespace_stats=[Stats(relists=4)])
    idle = {("a", "small"): 3, ("b", "gpu"): 0}
    metrics.watch_caches(
        kernels=kernels,
        informers={"kernels": kernels, "pods": pods},
        queues=[],
        pool_idle=lambda: dict(idle),
    )
    got = scrape(registry)
    assert got.types["kernel_pool_idle"] == "gauge"
    assert got.value("kernel_pool_idle", namespace="a", pool="small") == 3
    assert got.value("kernel_pool_idle", namespace="b", pool="gpu") == 0
    assert got.types["kernel_running"] == "gauge"
    assert got.types["kernels"] == "gauge"
    assert got.series("kernel_running") == {
        frozenset({("namespace", "a")}): 2,
        frozenset({("namespace", "b")}): 0,
    }
    phases_a = {
        dict(lbl)["phase"]: v
        for lbl, v in got.series("kernels").items()
        if ("namespace", "a") in lbl
    }
    assert phases_a == {"Pending": 2, "Running": 2, "Succeeded": 0, "Failed": 0, "Unknown": 1}
    assert got.value("kernels", namespace="b", phase="Failed") == 1
    assert got.value("kernels", namespace="b", phase="Running") == 0

    assert got.value("informer_objects", informer="kernels") == 6
    assert got.value("informer_objects", informer="pods") == 2
    assert got.types["informer_relists"] == "counter"
    assert got.value("informer_relists_total", informer="kernels") == 1
    assert got.value("informer_relists_total", informer="pods") == 4
    assert got.value("informer_watch_restarts_total", informer="kernels") == 5
    assert got.value("informer_watch_errors_total", informer="kernels") == 1

    # Read again at the next scrape: the cache moved, so do the values.
    kernels.objects[2] = kernel("a", "k3", "Running")
    del kernels.objects[5]
    idle[("a", "small")] = 1
    del idle[("b", "gpu")]
    got = scrape(registry)
    assert got.value("kernel_pool_idle", namespace="a", pool="small") == 1
    assert not got.has("kernel_pool_idle", namespace="b", pool="gpu")
    assert got.value("kernel_running", namespace="a") == 3
    assert got.value("kernels", namespace="a", phase="Pending") == 1
    assert not got.has("kernel_running", namespace="b")
    assert got.value("informer_objects", informer="kernels") == 5


def test_watch_caches_only_once(metrics: ControllerMetrics) -> None:
    metrics.watch_caches(kernels=FakeInformer(), informers={}, queues=[])
    with pytest.raises(RuntimeError):
        metrics.watch_caches(kernels=FakeInformer(), informers={}, queues=[])


def test_own_registry_only_and_bounded_label_names(
    registry: CollectorRegistry, metrics: ControllerMetrics
) -> None:
    ControllerMetrics(CollectorRegistry(), host=HOST)  # a second instance does not collide
    metrics.watch_caches(
        kernels=FakeInformer(objects=[kernel("a", "k1", "Running")]),
        informers={"kernels": FakeInformer(per_namespace_stats=[Stats()])},
        queues=[],
    )
    metrics.queue_metrics("kernel").add()
    metrics.request_observer().request_done(
        method="GET", verb="get", resource="kernels", code=200, seconds=0.1
    )
    metrics.kernel_metrics().kernel_culled("a")
    metrics.set_leader("kernel-controller", True)
    assert REGISTRY.get_sample_value("workqueue_adds_total", {"name": "kernel"}) is None
    got = scrape(registry)
    label_names = {name for (_, lbl) in got.samples for name, _ in lbl}
    allowed = {"controller", "result", "name", "code", "method", "host", "verb"}
    assert label_names <= allowed | {"namespace", "phase", "informer", "le", "source"}
    expected = {
        "controller_runtime_reconcile",
        "controller_runtime_reconcile_errors",
        "controller_runtime_reconcile_time_seconds",
        "controller_runtime_max_concurrent_reconciles",
        "controller_runtime_active_workers",
        "workqueue_depth",
        "workqueue_adds",
        "workqueue_queue_duration_seconds",
        "workqueue_work_duration_seconds",
        "workqueue_retries",
        "workqueue_unfinished_work_seconds",
        "workqueue_longest_running_processor_seconds",
        "rest_client_requests",
        "rest_client_request_duration_seconds",
        "leader_election_master_status",
        "kernel_running",
        "kernels",
        "kernel_create",
        "kernel_create_failed",
        "kernel_culling",
        "last_kernel_culling_timestamp_seconds",
        "kernel_startup_seconds",
        "kernel_pool_claims",
        "kernel_pool_idle",
        "informer_objects",
        "informer_relists",
        "informer_watch_restarts",
        "informer_watch_errors",
    }
    assert expected <= set(got.types)
