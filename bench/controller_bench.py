"""Controller benchmark (SPEC §10): burst, baseline, floor, API cost, memory at scale.

Usage: .venv/bin/python bench/controller_bench.py [--kernels 1000] [--runs 3]
                                                  [--scale 10000] [--steady 60]

Starts its own local control plane, the local node in ``--no-processes`` mode (Pods go
Running + Ready with an IP, no kernel process), and the controller as a separate process with
its defaults but ``--workers 8``: no client-side throttle (the API server is the limit, and
its Priority and Fairness answers overload with 429, which the controller obeys).
Each run:

1. Burst: N Kernels created at once (16 client threads). Time until every Pod and Service
   exists and every Kernel is Ready; p50/p95/p99 of Kernel created -> Pod created and -> Ready
   (seen by this process's own informers); the controller's CPU seconds and peak RSS; the CPU
   seconds of every process (API server, etcd, node, controller, this script) until every
   Pod and Service exists.
2. Baseline: the same N Pods and Services (the bodies the controller builds, without the
   ownerReference) created directly with the same client library (``informers.RestClient``)
   and the controller's worker count as concurrency, no controller. The local node binds the
   Pods and reports their status as it does for the controller's. Ratio = controller time /
   baseline time (min/median/max over ``--runs``).
3. Floor: what SPEC §3 asks of any controller per new Kernel, issued directly with the
   burst's concurrency (16 threads create the Kernels, 8 workers PATCH the identity and create
   the Pod and the Service of each created Kernel); Kernels of a copy of the CRD under another
   group, so no controller acts on them. Floor / baseline is
   the share of the burst time that no controller can remove on this machine.
4. API cost: requests by verb and resource from the API server's own
   ``apiserver_request_total`` (before/after the burst), per Kernel.
Then the run's namespaces are deleted (every run starts on the same cluster), and:

5. Memory at scale: controller RSS with ``--scale`` Kernels, their Pods and Services cached,
   read once every Kernel is Ready and the controller is idle.
6. Steady: API writes during ``--steady`` seconds after that (target: zero by the controller).
7. Restart: the controller is restarted with those Kernels settled, and a Kernel is created
   as soon as it is ready (caches synced): the time until its Pod exists, and how many
   reconciles the new controller had finished by then (target: within 3 s, before the
   initial list has been worked through).

Writes ``.bench/controller.json`` and prints one line per run and the whole result.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "hack"))

from benchlib import (
    CpuMeter,
    Proc,
    RequestCounts,
    by_verb_and_resource,
    http_ok,
    percentile,
    requests_since,
    wait_until,
)
from charts import controller_chart
from informers import (
    FuncHandler,
    Resource,
    ResourceClient,
    RestClient,
    SharedInformer,
    close_api_client,
    new_api_client,
)
from localcluster import ControlPlane, default_bin_dir, free_port, install_crds
from reconcilers.desired import Observed, desired_state
from reconcilers.model import Fresh, ReconcileSettings

KERNELS = Resource("jupyter.org", "v1", "kernels")
# The Kernel CRD under another group, which the controller does not watch (the floor phase).
FLOOR_GROUP = "floor.bench.jupyter.org"
FLOOR_KERNELS = Resource(FLOOR_GROUP, "v1", "kernels")
PODS = Resource("", "v1", "pods")
SERVICES = Resource("", "v1", "services")
NAMESPACES = Resource("", "v1", "namespaces", namespaced=False)
WORKERS = 8
CLIENT_THREADS = 16


def kernel(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "jupyter.org/v1",
        "kind": "Kernel",
        "metadata": {"name": name},
        "spec": {"template": {"spec": {"containers": [{"name": "main", "image": "bench"}]}}},
    }


class Watcher:
    """This process's own view: when each Pod/Service appeared and each Kernel became Ready."""

    def __init__(self, rest: RestClient, namespace: str) -> None:
        self.lock = threading.Lock()
        self.pod_seen: dict[str, float] = {}
        self.service_seen: dict[str, float] = {}
        self.ready_seen: dict[str, float] = {}
        self.informers = [
            self._informer(rest, PODS, namespace, self._record(self.pod_seen)),
            self._informer(rest, SERVICES, namespace, self._record(self.service_seen)),
            self._informer(rest, KERNELS, namespace, self._ready),
        ]

    def _informer(
        self, rest: RestClient, resource: Resource, namespace: str, on: Callable[[Any], None]
    ) -> SharedInformer:
        informer = SharedInformer(
            name=f"bench-{resource.plural}",
            lister_watcher=ResourceClient(rest, resource, namespace=namespace),
        )
        informer.add_event_handler(
            FuncHandler(add=lambda obj, _: on(obj), update=lambda _, new: on(new))
        )
        informer.start()
        informer.wait_for_sync(60)
        return informer

    def _record(self, into: dict[str, float]) -> Callable[[Any], None]:
        def record(obj: Any) -> None:
            with self.lock:
                into.setdefault(obj["metadata"]["name"], time.monotonic())

        return record

    def _ready(self, obj: Any) -> None:
        for cond in (obj.get("status") or {}).get("conditions") or ():
            if cond.get("type") == "Ready" and cond.get("status") == "True":
                with self.lock:
                    self.ready_seen.setdefault(obj["metadata"]["name"], time.monotonic())

    def counts(self) -> tuple[int, int, int]:
        with self.lock:
            return len(self.pod_seen), len(self.service_seen), len(self.ready_seen)

    def stop(self) -> None:
        for informer in self.informers:
            informer.stop()
        for informer in self.informers:
            informer.join()


def apiserver_requests(plane: ControlPlane) -> RequestCounts:
    """``apiserver_request_total`` summed by (verb, resource), from the API server itself."""
    return by_verb_and_resource(plane.request_totals())


def new_namespace(rest: RestClient, prefix: str) -> str:
    created = ResourceClient(rest, NAMESPACES).create({"metadata": {"generateName": prefix}})
    return str(created["metadata"]["name"])


def delete_run_namespaces(rest: RestClient) -> float:
    """Delete the namespaces of a run and wait until they are gone, so that every run starts
    on the same cluster and the controller's cache holds only the scale phase's objects."""
    namespaces = ResourceClient(rest, NAMESPACES)
    names = [
        ns["metadata"]["name"]
        for ns in namespaces.list(limit=0, continue_token="", resource_version="")["items"]
        if ns["metadata"]["name"].startswith(("burst-", "baseline-", "floor-"))
    ]
    t0 = time.monotonic()
    for name in names:
        namespaces.delete(name)

    def gone() -> bool:
        items = namespaces.list(limit=0, continue_token="", resource_version="")["items"]
        return not {ns["metadata"]["name"] for ns in items} & set(names)

    return wait_until(gone, 900, "run namespaces not deleted", interval=1.0) - t0


def burst(
    plane: ControlPlane, rest: RestClient, n: int, controller: Proc, pids: dict[str, int]
) -> dict[str, Any]:
    namespace = new_namespace(rest, "burst-")
    watcher = Watcher(rest, namespace)
    kernels = ResourceClient(rest, KERNELS, namespace=namespace)
    before = apiserver_requests(plane)
    cpu_before = controller.cpu_seconds()
    created: dict[str, float] = {}
    lock = threading.Lock()

    def create(i: int) -> None:
        name = f"k-{i:05d}"
        kernels.create(kernel(name))
        with lock:
            created[name] = time.monotonic()

    meter = CpuMeter(pids)
    t0 = time.monotonic()
    with ThreadPoolExecutor(CLIENT_THREADS) as pool:
        list(pool.map(create, range(n)))
    kernels_at = time.monotonic()
    children_at = wait_until(
        lambda: watcher.counts()[:2] == (n, n), 600, "pods and services never all existed"
    )
    window_cpu = meter.used()
    ready_at = wait_until(lambda: watcher.counts()[2] == n, 600, "kernels never all Ready")
    cpu = controller.cpu_seconds() - cpu_before
    after = apiserver_requests(plane)
    with watcher.lock:
        to_pod = [watcher.pod_seen[k] - created[k] for k in created]
        to_ready = [watcher.ready_seen[k] - created[k] for k in created]
    watcher.stop()
    cost = requests_since(before, after, per=n, digits=3)
    return {
        "namespace": namespace,
        "kernels_created_seconds": round(kernels_at - t0, 2),
        "children_seconds": round(children_at - t0, 2),
        "ready_seconds": round(ready_at - t0, 2),
        "created_to_pod_p50": round(percentile(to_pod, 0.50), 3),
        "created_to_pod_p95": round(percentile(to_pod, 0.95), 3),
        "created_to_pod_p99": round(percentile(to_pod, 0.99), 3),
        "created_to_ready_p50": round(percentile(to_ready, 0.50), 3),
        "created_to_ready_p95": round(percentile(to_ready, 0.95), 3),
        "created_to_ready_p99": round(percentile(to_ready, 0.99), 3),
        "controller_cpu_seconds": round(cpu, 2),
        "controller_peak_rss_mib": round(controller.memory_mib("VmHWM"), 1),
        "cpu_seconds_until_children": window_cpu,
        "requests_per_kernel": cost,
    }


def children_of(name: str, namespace: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The Pod and Service the controller would create for ``kernel(name)``, minus the
    ownerReference (there is no Kernel; the garbage collector would delete them)."""
    obj = kernel(name) | {}
    obj["metadata"] = {"name": name, "namespace": namespace, "uid": str(uuid.uuid4())}
    desired = desired_state(
        kernel=obj,
        observed=Observed(),
        settings=ReconcileSettings(),
        fresh=Fresh(kernel_id=str(uuid.uuid4()), key=""),
        now=datetime.now(UTC),
    )
    assert desired.pod is not None and desired.service is not None
    for child in (desired.pod, desired.service):
        child["metadata"].pop("ownerReferences", None)
    return desired.pod, desired.service


def baseline(rest: RestClient, n: int, pids: dict[str, int]) -> tuple[float, dict[str, float]]:
    """Create the same N Pods and Services as the controller would, with its concurrency.

    The Pods carry the kernel label, so the local node binds them and reports their status
    during the baseline too, as it does for the controller's Pods.
    """
    namespace = new_namespace(rest, "baseline-")
    pods = ResourceClient(rest, PODS, namespace=namespace)
    services = ResourceClient(rest, SERVICES, namespace=namespace)
    bodies = [children_of(f"b-{i:05d}", namespace) for i in range(n)]

    def create(i: int) -> None:
        pod, service = bodies[i]
        pods.create(pod)
        services.create(service)

    meter = CpuMeter(pids)
    t0 = time.monotonic()
    with ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(create, range(n)))
    return time.monotonic() - t0, meter.used()


def floor_crd(work: Path) -> Path:
    """The Kernel CRD, same schema and validation, under ``FLOOR_GROUP``."""
    body = yaml.safe_load(
        (REPO / "config" / "crd" / "bases" / "jupyter.org_kernels.yaml").read_text()
    )
    body["metadata"]["name"] = f"kernels.{FLOOR_GROUP}"
    body["spec"]["group"] = FLOOR_GROUP
    body["spec"]["names"].pop("shortNames", None)
    body["spec"]["names"].pop("categories", None)
    path = work / "floor-crd.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def floor(rest: RestClient, n: int, pids: dict[str, int]) -> tuple[float, dict[str, float]]:
    """What SPEC §3 asks of any controller for N new Kernels, issued directly with the burst's
    concurrency: 16 threads create the Kernels at once while 8 workers (the controller's
    count) take each created Kernel and PATCH its identity, create its Pod and its Service.
    No status write, no Event. Kernels of ``FLOOR_GROUP`` cost the API server what Kernels
    cost, and no controller acts on them."""
    namespace = new_namespace(rest, "floor-")
    kernels = ResourceClient(rest, FLOOR_KERNELS, namespace=namespace)
    pods = ResourceClient(rest, PODS, namespace=namespace)
    services = ResourceClient(rest, SERVICES, namespace=namespace)
    bodies = [children_of(f"f-{i:05d}", namespace) for i in range(n)]
    created: queue.SimpleQueue[int] = queue.SimpleQueue()

    def create_kernel(i: int) -> None:
        name = bodies[i][0]["metadata"]["name"]
        kernels.create(kernel(name) | {"apiVersion": f"{FLOOR_GROUP}/v1"})
        created.put(i)

    def act(_: int) -> None:
        while (i := created.get()) >= 0:
            pod, service = bodies[i]
            name = pod["metadata"]["name"]
            annotations = {
                "jupyter.org/kernel-id": str(uuid.uuid4()),
                "jupyter.org/kernel-connection-info": json.dumps(
                    {"shell_port": 52317, "key": str(uuid.uuid4()), "ip": f"{name}.{namespace}"}
                ),
            }
            kernels.patch(name, {"metadata": {"annotations": annotations}})
            pods.create(pod)
            services.create(service)

    meter = CpuMeter(pids)
    t0 = time.monotonic()
    with ThreadPoolExecutor(WORKERS) as workers:
        acting = workers.map(act, range(WORKERS))
        try:
            with ThreadPoolExecutor(CLIENT_THREADS) as creators:
                list(creators.map(create_kernel, range(n)))
        finally:
            for _ in range(WORKERS):
                created.put(-1)  # one stop mark per worker, after every Kernel
        list(acting)
    return time.monotonic() - t0, meter.used()


def steady(plane: ControlPlane, seconds: float) -> dict[str, float]:
    before = apiserver_requests(plane)
    time.sleep(seconds)  # the steady window being measured
    return requests_since(before, apiserver_requests(plane), writes_only=True)


def scale(rest: RestClient, controller: Proc, total: int) -> dict[str, Any]:
    """Create ``total`` Kernels; report the controller's memory once all are settled."""
    namespace = new_namespace(rest, "scale-")
    kernels = ResourceClient(rest, KERNELS, namespace=namespace)
    with ThreadPoolExecutor(CLIENT_THREADS) as pool:
        list(pool.map(lambda i: kernels.create(kernel(f"s-{i:05d}")), range(total)))
    # Watch (not list) the namespace: listing 10,000 Services over and over slowed the very
    # run it waited for. Memory is read once everything settled: every Kernel Ready (its
    # status written and cached) and the controller idle.
    watcher = Watcher(rest, namespace)
    try:
        wait_until(lambda: watcher.counts()[2] >= total, 1800, "scale ready", interval=1.0)
    finally:
        watcher.stop()
    settle_deadline = time.monotonic() + 120
    while time.monotonic() < settle_deadline:
        before = controller.cpu_seconds()
        time.sleep(5)  # one measuring window of the controller's CPU use
        if controller.cpu_seconds() - before < 0.25:
            break
    return {
        "namespace": namespace,
        "kernels_cached": total,
        "controller_rss_mib": round(controller.memory_mib("VmRSS"), 1),
        "controller_peak_rss_mib": round(controller.memory_mib("VmHWM"), 1),
    }


def controller_proc(kubeconfig: str, log: Path, *, metrics_port: int, probe_port: int) -> Proc:
    return Proc(
        [
            str(Path(sys.executable).with_name("kernel-controller")),
            f"--kubeconfig={kubeconfig}",
            f"--workers={WORKERS}",
            f"--metrics-addr=127.0.0.1:{metrics_port}" if metrics_port else "--metrics-addr=0",
            f"--probe-addr=127.0.0.1:{probe_port}",
            "--no-reissue-pod-events",
        ],
        log,
    )


def restart(
    rest: RestClient, controller: Proc, *, kubeconfig: str, namespace: str, settled: int, log: Path
) -> tuple[Proc, dict[str, Any]]:
    """Restart the controller over ``settled`` Kernels; time a Kernel created at once."""
    watcher = Watcher(rest, namespace)
    controller.stop()
    metrics_port, probe_port = free_port(), free_port()
    started = time.monotonic()
    fresh = controller_proc(kubeconfig, log, metrics_port=metrics_port, probe_port=probe_port)
    try:
        wait_until(
            lambda: http_ok(f"http://127.0.0.1:{probe_port}/readyz") is not None, 300, "ready"
        )
        synced = created = time.monotonic()
        ResourceClient(rest, KERNELS, namespace=namespace).create(kernel("fresh-after-restart"))
        seen = wait_until(
            lambda: "fresh-after-restart" in watcher.pod_seen, 60, "fresh Pod", interval=0.005
        )
        text = http_ok(f"http://127.0.0.1:{metrics_port}/metrics") or ""
    except BaseException:
        fresh.stop()
        raise
    finally:
        watcher.stop()
    reconciled = sum(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("controller_runtime_reconcile_total{")
    )
    return fresh, {
        "settled_kernels": settled,
        "start_to_synced_seconds": round(synced - started, 2),
        "new_kernel_pod_seconds": round(seen - created, 3),
        "reconciled_when_pod_seen": int(reconciled),
    }


def table(results: dict[str, Any]) -> str:
    """The results as a Markdown table (what docs/develop/benchmarks.md shows)."""
    runs = results["runs"]

    def row(label: str, cell: Callable[[dict[str, Any]], str]) -> str:
        return f"| {label} | " + " | ".join(cell(r) for r in runs) + " |"

    def trio(r: dict[str, Any], prefix: str) -> str:
        return " / ".join(f"{r[f'{prefix}_p{q}']:.1f}" for q in (50, 95, 99)) + " s"

    def spread(field: str) -> str:
        low, mid, high = results[f"{field}_min_median_max"]
        return f"{low:.2f} / {mid:.2f} / {high:.2f}"

    n = results["kernels"]
    lines = [
        f"| figure ({n:,} Kernels) | "
        + " | ".join(f"run {i + 1}" for i in range(len(runs)))
        + " |",
        "| --- |" + " --- |" * len(runs),
        row("every Pod and Service exists", lambda r: f"{r['children_seconds']:.1f} s"),
        row("every Kernel Ready", lambda r: f"{r['ready_seconds']:.1f} s"),
        row(
            "baseline: the same Pods + Services created directly",
            lambda r: f"{r['baseline_seconds']:.1f} s",
        ),
        row(
            "floor: Kernel create + identity PATCH + Pod + Service, directly",
            lambda r: f"{r['floor_seconds']:.1f} s",
        ),
        row(
            f"**controller / baseline** (min / median / max {spread('ratio')})",
            lambda r: f"{r['ratio']:.2f}",
        ),
        row(f"floor / baseline ({spread('floor_ratio')})", lambda r: f"{r['floor_ratio']:.2f}"),
        row(
            f"controller / floor ({spread('ratio_to_floor')})",
            lambda r: f"{r['ratio_to_floor']:.2f}",
        ),
        row("Kernel created → Pod created p50 / p95 / p99", lambda r: trio(r, "created_to_pod")),
        row("Kernel created → Ready p50 / p95 / p99", lambda r: trio(r, "created_to_ready")),
        row(
            "controller CPU seconds / peak RSS",
            lambda r: (
                f"{r['controller_cpu_seconds']:.1f} s / {r['controller_peak_rss_mib']:.0f} MiB"
            ),
        ),
    ]
    phases = ("cpu_seconds_until_children", "baseline_cpu_seconds", "floor_cpu_seconds")

    def cpu_cell(name: str) -> Callable[[dict[str, Any]], str]:
        return lambda r: " / ".join(f"{r[phase][name]:.1f}" for phase in phases)

    for name in runs[0]["cpu_seconds_until_children"]:
        lines.append(row(f"CPU s of {name}: burst / baseline / floor", cpu_cell(name)))
    if "restart" in results:
        r = results["restart"]
        lines.append(
            f"\nRestart over {r['settled_kernels']:,} settled Kernels: caches synced after "
            f"{r['start_to_synced_seconds']} s; a Kernel created then had its Pod after "
            f"{r['new_kernel_pod_seconds']} s, when {r['reconciled_when_pod_seen']:,} "
            "reconciles were done."
        )
    if "scale" in results:
        scale = results["scale"]
        lines.append(
            f"\nMemory: controller RSS {scale['controller_rss_mib']:.1f} MiB with "
            f"{scale['kernels_cached']:,} Kernels, their Pods and Services cached."
        )
    writes = results.get("steady_writes", {})
    lines.append(f"Steady window writes (all clients): {json.dumps(writes) if writes else 'none'}.")
    return "\n".join(lines)


def one_run(
    plane: ControlPlane, rest: RestClient, n: int, controller: Proc, pids: dict[str, int]
) -> dict[str, Any]:
    """Burst, baseline and floor on a cluster without earlier runs' objects; then clean up."""
    result = burst(plane, rest, n, controller, pids)
    seconds, cpu = baseline(rest, n, pids)
    result["baseline_seconds"] = round(seconds, 2)
    result["baseline_cpu_seconds"] = cpu
    seconds, cpu = floor(rest, n, pids)
    result["floor_seconds"] = round(seconds, 2)
    result["floor_cpu_seconds"] = cpu
    result["ratio"] = round(result["children_seconds"] / result["baseline_seconds"], 2)
    result["floor_ratio"] = round(result["floor_seconds"] / result["baseline_seconds"], 2)
    result["ratio_to_floor"] = round(result["children_seconds"] / result["floor_seconds"], 2)
    result["cleanup_seconds"] = round(delete_run_namespaces(rest), 1)
    return result


def bursts(
    plane: ControlPlane,
    rest: RestClient,
    controller: Proc,
    pids: dict[str, int],
    *,
    kernels: int,
    runs: int,
) -> dict[str, Any]:
    """``runs`` burst/baseline/floor runs of ``kernels`` Kernels, and their spreads."""
    results: dict[str, Any] = {"runs": []}
    for run in range(runs):
        result = one_run(plane, rest, kernels, controller, pids)
        results["runs"].append(result)
        brief = {k: v for k, v in result.items() if k != "requests_per_kernel"}
        print(f"run {run + 1}: {json.dumps(brief)}", flush=True)
    for field in ("ratio", "floor_ratio", "ratio_to_floor"):
        values = [r[field] for r in results["runs"]]
        results[f"{field}_min_median_max"] = [min(values), statistics.median(values), max(values)]
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kernels", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--scale", type=int, default=10_000)
    parser.add_argument("--steady", type=float, default=60.0)
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="controller-bench-"))
    plane = ControlPlane(bin_dir=default_bin_dir(), work_dir=work / "cluster")
    crds = sorted((REPO / "config" / "crd" / "bases").glob("*.yaml"))
    work.mkdir(parents=True, exist_ok=True)
    crds.append(floor_crd(work))
    plane.start(before_controller_manager=lambda: install_crds(plane.kubeconfig_path, crds))
    kubeconfig = str(plane.kubeconfig_path)
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}:{REPO / 'hack'}"}
    node = Proc(
        [
            sys.executable,
            "-m",
            "localnode",
            f"--kubeconfig={kubeconfig}",
            "--no-processes",
            f"--state-dir={work / 'node'}",
        ],
        work / "node.log",
        env,
    )
    controller = controller_proc(
        kubeconfig, work / "controller.log", metrics_port=0, probe_port=free_port()
    )
    api = new_api_client(kubeconfig, pool_size=64)  # 16 creators + watches: no discarded conns
    rest = RestClient(api)
    pids = {name: proc.pid for name, proc in plane.processes.items() if proc.pid is not None}
    pids |= {"node": node.popen.pid, "controller": controller.popen.pid, "bench": os.getpid()}
    finished = False
    results: dict[str, Any] = {"kernels": args.kernels, "workers": WORKERS, "runs": []}
    try:
        time.sleep(3)  # let both processes start and sync (empty caches)
        results |= bursts(plane, rest, controller, pids, kernels=args.kernels, runs=args.runs)
        if args.scale:
            results["scale"] = scale(rest, controller, args.scale)
            print(f"scale: {json.dumps(results['scale'])}", flush=True)
        results["steady_writes"] = steady(plane, args.steady)
        if args.scale:
            controller, results["restart"] = restart(
                rest,
                controller,
                kubeconfig=kubeconfig,
                namespace=results["scale"]["namespace"],
                settled=args.scale,
                log=work / "controller-restarted.log",
            )
            print(f"restart: {json.dumps(results['restart'])}", flush=True)
        finished = True
    finally:
        close_api_client(api)
        controller.stop()
        node.stop()
        plane.stop()
        if finished:
            shutil.rmtree(work, ignore_errors=True)  # etcd's data: ~600 MB after a full run
        else:
            print(f"logs and data kept in {work}", file=sys.stderr)
    out = REPO / ".bench" / "controller.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    print(table(results))
    print(f"chart: {controller_chart(results)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
