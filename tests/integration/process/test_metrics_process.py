"""The controller process exports the metrics of SPEC §5 and they move as Kernels live."""

from __future__ import annotations

from collections.abc import Callable

from controllerprocess import ControllerProcess
from eventually import eventually
from kerneltest import Clients, kernel_body

NOW = "2026-01-01T00:00:00Z"


def test_metrics_exist_with_their_labels_and_move(
    spawn: Callable[..., ControllerProcess], clients: Clients
) -> None:
    ns = clients.namespace
    proc = spawn(f"--namespaces={ns}", "--workers=3")
    proc.wait_ready()
    for name in ("m1", "m2", "m3"):
        clients.kernels.create(kernel_body(name))
    for name in ("m1", "m2", "m3"):
        eventually(lambda name=name: clients.get(clients.pods, name), timeout=30, message="no pod")
    clients.set_pod_status(
        "m1",
        {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": NOW}],
        },
    )
    clients.set_pod_status("m2", {"phase": "Succeeded"})
    eventually(lambda: clients.get(clients.kernels, "m2") is None, timeout=30, message="not culled")
    eventually(
        lambda: proc.value("kernel_running", namespace=ns) == 1.0,
        timeout=30,
        message="kernel_running did not reach 1",
    )

    m = proc.metrics()

    def v(metric: str, /, **labels: str) -> float | None:
        return m.get((metric, tuple(sorted(labels.items()))))

    kernel = {"controller": "kernel"}
    queue = {"name": "kernel"}
    assert (v("controller_runtime_reconcile_total", result="success", **kernel) or 0) > 3
    for result in ("error", "requeue", "requeue_after"):
        assert v("controller_runtime_reconcile_total", result=result, **kernel) is not None
    assert v("controller_runtime_reconcile_errors_total", **kernel) is not None
    assert (v("controller_runtime_reconcile_time_seconds_count", **kernel) or 0) > 3
    assert v("controller_runtime_max_concurrent_reconciles", **kernel) == 3
    assert v("controller_runtime_active_workers", **kernel) is not None
    assert (v("workqueue_adds_total", **queue) or 0) > 3
    assert v("workqueue_depth", **queue) is not None
    assert (v("workqueue_queue_duration_seconds_count", **queue) or 0) > 3
    assert (v("workqueue_work_duration_seconds_count", **queue) or 0) > 3
    assert v("workqueue_retries_total", **queue) is not None
    assert v("workqueue_unfinished_work_seconds", **queue) is not None
    assert v("workqueue_longest_running_processor_seconds", **queue) is not None
    posts = [
        value
        for (name, labels), value in m.items()
        if name == "rest_client_requests_total"
        and ("code", "201") in labels
        and ("method", "POST") in labels
        and any(k == "host" for k, _ in labels)
    ]
    assert sum(posts) >= 6  # 3 Pods + 3 Services (+ Events)
    assert v("kernel_create_total", namespace=ns) == 3
    assert v("kernel_create_failed_total", namespace=ns) in (None, 0.0)
    assert v("kernel_culling_total", namespace=ns) == 1
    assert (v("last_kernel_culling_timestamp_seconds", namespace=ns) or 0) > 1.7e9
    assert v("kernel_running", namespace=ns) == 1
    assert v("kernels", namespace=ns, phase="Running") == 1
    assert v("kernels", namespace=ns, phase="Pending") == 1
    assert v("kernel_startup_seconds_count", source="cold") == 1
    assert (v("informer_objects", informer="kernels") or 0) >= 2
    for (name, labels), _ in m.items():
        assert ("name", "m1") not in labels and ("kernel", "m1") not in labels, name
