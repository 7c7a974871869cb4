"""Controller benchmark (SPEC §10): burst, baseline, API cost, memory at scale.

Usage: .venv/bin/python bench/controller_bench.py [--kernels 1000] [--runs 3]
                                                  [--scale 10000] [--steady 60]

Starts its own local control plane, the local node in ``--no-processes`` mode (Pods go
Running + Ready with an IP, no kernel process), and the controller as a separate process with
``--qps``/``--burst`` high enough not to be the limit (the API server is the limit here).

1. Burst: N Kernels created at once (16 client threads). Time until every Pod and Service
   exists and every Kernel is Ready; p50/p95/p99 of Kernel created → Pod created and → Ready
   (seen by this process's own informers); the controller's CPU seconds and peak RSS.
2. Baseline: the same N Pods and Services created directly with the same client library
   (``informers.RestClient``) and the controller's worker count as concurrency, no controller.
   Ratio = controller time / baseline time (min/median/max over ``--runs``).
3. API cost: requests by verb and resource from the API server's own
   ``apiserver_request_total`` (before/after), per Kernel; then a steady window of
   ``--steady`` seconds after everything settled (target: zero writes).
4. Memory at scale: controller RSS with ``--scale`` Kernels, their Pods and Services cached.

Writes ``.bench/controller.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "hack"))

from informers import (
    FuncHandler,
    Resource,
    ResourceClient,
    RestClient,
    SharedInformer,
    close_api_client,
    new_api_client,
)
from localcluster import ControlPlane, default_bin_dir, install_crds

KERNELS = Resource("jupyter.org", "v1", "kernels")
PODS = Resource("", "v1", "pods")
SERVICES = Resource("", "v1", "services")
NAMESPACES = Resource("", "v1", "namespaces", namespaced=False)
WORKERS = 8
CLIENT_THREADS = 16
WRITE_VERBS = {"POST", "PUT", "PATCH", "DELETE", "APPLY"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def kernel(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "jupyter.org/v1",
        "kind": "Kernel",
        "metadata": {"name": name},
        "spec": {"template": {"spec": {"containers": [{"name": "main", "image": "bench"}]}}},
    }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


class Proc:
    """A child process (local node or controller) with CPU and memory readings."""

    def __init__(self, argv: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.log = log.open("ab")
        self.popen = subprocess.Popen(
            argv, stdout=self.log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.popen.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def memory_mib(self, field: str) -> float:
        for line in Path(f"/proc/{self.popen.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(30)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)
        self.log.close()


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
        informer.add_event_handler(FuncHandler(add=on, update=lambda _, new: on(new)))
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


def apiserver_requests(plane: ControlPlane) -> dict[tuple[str, str], float]:
    """``apiserver_request_total`` summed by (verb, resource), from the API server itself."""
    token = plane.token_path.read_text().strip()
    request = urllib.request.Request(  # noqa: S310 - the local API server
        f"{plane.server_url}/metrics", headers={"Authorization": f"Bearer {token}"}
    )
    context = ssl.create_default_context(cafile=str(plane.ca_path))
    with urllib.request.urlopen(request, context=context, timeout=30) as resp:  # noqa: S310
        text = resp.read().decode()
    totals: dict[tuple[str, str], float] = {}
    for line in text.splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
        sub = f"/{labels['subresource']}" if labels.get("subresource") else ""
        key = (labels.get("verb", ""), labels.get("resource", "") + sub)
        totals[key] = totals.get(key, 0.0) + float(line.split()[-1])
    return totals


def wait_until(
    predicate: Callable[[], bool], timeout: float, what: str, *, interval: float = 0.05
) -> float:
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise TimeoutError(what)
        time.sleep(interval)  # benchmark poll, bounded by the timeout
    return time.monotonic()


def new_namespace(rest: RestClient, prefix: str) -> str:
    created = ResourceClient(rest, NAMESPACES).create({"metadata": {"generateName": prefix}})
    return str(created["metadata"]["name"])


def burst(plane: ControlPlane, rest: RestClient, n: int, controller: Proc) -> dict[str, Any]:
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

    t0 = time.monotonic()
    with ThreadPoolExecutor(CLIENT_THREADS) as pool:
        list(pool.map(create, range(n)))
    children_at = wait_until(
        lambda: watcher.counts()[:2] == (n, n), 600, "pods and services never all existed"
    )
    ready_at = wait_until(lambda: watcher.counts()[2] == n, 600, "kernels never all Ready")
    cpu = controller.cpu_seconds() - cpu_before
    after = apiserver_requests(plane)
    with watcher.lock:
        to_pod = [watcher.pod_seen[k] - created[k] for k in created]
        to_ready = [watcher.ready_seen[k] - created[k] for k in created]
    watcher.stop()
    cost = {
        f"{verb} {res}": round((after.get((verb, res), 0.0) - before.get((verb, res), 0.0)) / n, 3)
        for verb, res in sorted(set(after) | set(before))
        if after.get((verb, res), 0.0) - before.get((verb, res), 0.0) > 0
    }
    return {
        "namespace": namespace,
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
        "requests_per_kernel": cost,
    }


def baseline(rest: RestClient, n: int) -> float:
    """Create N Pods and N Services directly, as the controller's workers would."""
    namespace = new_namespace(rest, "baseline-")
    pods = ResourceClient(rest, PODS, namespace=namespace)
    services = ResourceClient(rest, SERVICES, namespace=namespace)

    def create(i: int) -> None:
        name = f"b-{i:05d}"
        pods.create(
            {"metadata": {"name": name}, "spec": {"containers": [{"name": name, "image": "bench"}]}}
        )
        services.create(
            {
                "metadata": {"name": name},
                "spec": {"selector": {"app": name}, "ports": [{"name": "p", "port": 52317}]},
            }
        )

    t0 = time.monotonic()
    with ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(create, range(n)))
    return time.monotonic() - t0


def steady(plane: ControlPlane, seconds: float) -> dict[str, float]:
    before = apiserver_requests(plane)
    time.sleep(seconds)  # the steady window being measured
    after = apiserver_requests(plane)
    return {
        f"{verb} {res}": after.get((verb, res), 0.0) - before.get((verb, res), 0.0)
        for verb, res in sorted(after)
        if verb in WRITE_VERBS and after.get((verb, res), 0.0) - before.get((verb, res), 0.0) > 0
    }


def scale(rest: RestClient, controller: Proc, *, total: int, existing: int) -> dict[str, Any]:
    """Top up to ``total`` Kernels in the cluster; report the controller's memory then."""
    namespace = new_namespace(rest, "scale-")
    kernels = ResourceClient(rest, KERNELS, namespace=namespace)
    to_create = max(0, total - existing)
    with ThreadPoolExecutor(CLIENT_THREADS) as pool:
        list(pool.map(lambda i: kernels.create(kernel(f"s-{i:05d}")), range(to_create)))
    # Watch (not list) the namespace: listing 10,000 Services over and over slowed the very
    # run it waited for.
    watcher = Watcher(rest, namespace)
    try:
        wait_until(lambda: watcher.counts()[1] >= to_create, 1800, "scale services", interval=1.0)
    finally:
        watcher.stop()
    time.sleep(10)  # let the last status writes land before reading RSS
    return {
        "kernels_cached": to_create + existing,
        "controller_rss_mib": round(controller.memory_mib("VmRSS"), 1),
        "controller_peak_rss_mib": round(controller.memory_mib("VmHWM"), 1),
    }


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
    controller = Proc(
        [
            str(Path(sys.executable).with_name("kernel-controller")),
            f"--kubeconfig={kubeconfig}",
            f"--workers={WORKERS}",
            "--qps=5000",
            "--burst=5000",
            "--metrics-addr=0",
            f"--probe-addr=127.0.0.1:{free_port()}",
            "--no-reissue-pod-events",
        ],
        work / "controller.log",
    )
    api = new_api_client(kubeconfig, pool_size=64)  # 16 creators + watches: no discarded conns
    rest = RestClient(api)
    results: dict[str, Any] = {"kernels": args.kernels, "workers": WORKERS, "runs": []}
    try:
        time.sleep(3)  # let both processes start and sync (empty caches)
        for run in range(args.runs):
            result = burst(plane, rest, args.kernels, controller)
            result["baseline_seconds"] = round(baseline(rest, args.kernels), 2)
            result["ratio"] = round(result["children_seconds"] / result["baseline_seconds"], 2)
            results["runs"].append(result)
            brief = {k: v for k, v in result.items() if k != "requests_per_kernel"}
            print(f"run {run + 1}: {json.dumps(brief)}")
        ratios = [r["ratio"] for r in results["runs"]]
        results["ratio_min_median_max"] = [min(ratios), statistics.median(ratios), max(ratios)]
        results["steady_writes"] = steady(plane, args.steady)
        if args.scale:
            results["scale"] = scale(
                rest, controller, total=args.scale, existing=args.kernels * args.runs
            )
    finally:
        close_api_client(api)
        controller.stop()
        node.stop()
        plane.stop()
    out = REPO / ".bench" / "controller.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
