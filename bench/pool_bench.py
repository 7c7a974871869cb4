"""Warm pool benchmark (SPEC §13): how fast a Kernel is Ready, and answers, with and without a
KernelPool.

Usage: .venv/bin/python bench/pool_bench.py [--kernels 20] [--rounds 3]

Starts its own local control plane, the local node with real kernel processes (each Pod is a
real IPython kernel started by ``kernel_launch/``), and the controller as a separate process
with its defaults, serving one namespace. Each round has two phases:

1. **pool**: a KernelPool of N replicas; once all N standby kernels are idle and Ready, N
   Kernels naming the pool are created at once (N client threads released together).
2. **cold**: the pool is deleted (and its Pods gone); N Kernels with the same template and no
   pool are created at once.

For each Kernel: the time from just before its create request to the moment this process's
own watch shows ``Ready=True`` (watch latency included), and to its first ``execute_reply``
for ``1+1``, sent by a client built from the Kernel's published connection info (host: the Pod
IP, as ``hack/kernel_connect.py``) as soon as the watch shows it Ready. After each phase the
Kernels are deleted and the next phase waits until their Pods are gone.

Prints p50/p99/max per phase over all rounds, the CPU each process used and the API writes
per Kernel (every client's, from the API server's ``apiserver_request_total``) during the last
burst of each phase, the controller's pool claim counters, and writes ``.bench/pool.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

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
from charts import pool_chart
from informers import (
    FuncHandler,
    Resource,
    ResourceClient,
    RestClient,
    SharedInformer,
    close_api_client,
    new_api_client,
    thaw,
)
from kernel_connect import connection_info, run_code
from localcluster import ControlPlane, default_bin_dir, free_port, install_crds

KERNELS = Resource("jupyter.org", "v1", "kernels")
POOLS = Resource("jupyter.org", "v1alpha1", "kernelpools")
PODS = Resource("", "v1", "pods")
NAMESPACES = Resource("", "v1", "namespaces", namespaced=False)
IMAGE = "elyra/kernel-py:3.2.3"  # the local node runs its own Python whatever the image
POOL = "bench"
TIMEOUT = 300.0
RequestTotals = Callable[[], RequestCounts]


def template() -> dict[str, Any]:
    return {"spec": {"containers": [{"name": "main", "image": IMAGE}]}}


def pool_body(replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "jupyter.org/v1alpha1",
        "kind": "KernelPool",
        "metadata": {"name": POOL},
        "spec": {"replicas": replicas, "template": template()},
    }


def kernel_body(name: str, *, pooled: bool) -> dict[str, Any]:
    spec: dict[str, Any] = {"poolRef": {"name": POOL}} if pooled else {"template": template()}
    return {"apiVersion": "jupyter.org/v1", "kind": "Kernel", "metadata": {"name": name},
            "spec": spec}  # fmt: skip


def is_ready(obj: Mapping[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (obj.get("status") or {}).get("conditions") or ()
    )


class Stopwatch:
    """Times each Kernel of a phase: created (before the POST) → Ready seen by this process's
    watch → first ``execute_reply`` of a client started the moment it was seen Ready."""

    def __init__(self, rest: RestClient, namespace: str, clients: ThreadPoolExecutor) -> None:
        self.lock = threading.Lock()
        self.created: dict[str, float] = {}
        self.listed: dict[str, float] = {}  # first seen by the watch
        self.ready: dict[str, float] = {}
        self.replied: dict[str, float] = {}
        self.errors: dict[str, str] = {}
        self.runs: list[Future[None]] = []
        self.clients = clients
        self.informer = SharedInformer(
            name="bench-kernels", lister_watcher=ResourceClient(rest, KERNELS, namespace=namespace)
        )
        self.informer.add_event_handler(
            FuncHandler(add=lambda obj, _: self._seen(obj), update=lambda _, new: self._seen(new))
        )
        self.informer.start()
        self.informer.wait_for_sync(60)

    def _seen(self, obj: Mapping[str, Any]) -> None:
        name = obj["metadata"]["name"]
        with self.lock:
            self.listed.setdefault(name, time.monotonic())
        if not is_ready(obj):
            return
        with self.lock:
            if name not in self.created or name in self.ready:
                return
            self.ready[name] = time.monotonic()
        self.runs.append(self.clients.submit(self._execute, name, obj))

    def _execute(self, name: str, kernel: Mapping[str, Any]) -> None:
        try:
            out = run_code(connection_info(thaw(kernel), host="pod", key=None), "1+1", timeout=60)
        except Exception as err:
            out = f"{type(err).__name__}: {err}"
        with self.lock:
            if out == "2":
                self.replied[name] = time.monotonic()
            else:
                self.errors[name] = out

    def done(self, names: list[str]) -> bool:
        with self.lock:
            return all(n in self.replied or n in self.errors for n in names)

    def stop(self) -> None:
        for run in self.runs:
            run.result()
        self.informer.stop()
        self.informer.join()


def burst(
    rest: RestClient,
    namespace: str,
    names: list[str],
    *,
    pooled: bool,
    pids: dict[str, int],
    requests: RequestTotals,
) -> dict[str, Any]:
    """Create ``names`` at once and time each to Ready and to its first reply; the CPU
    seconds each process of the run used meanwhile (the kernels' own aside), and the API
    writes per Kernel."""
    kernels = ResourceClient(rest, KERNELS, namespace=namespace)
    start = threading.Barrier(len(names))
    with ThreadPoolExecutor(len(names), thread_name_prefix="client") as clients:
        watch = Stopwatch(rest, namespace, clients)
        try:

            def create(name: str) -> None:
                start.wait()
                with watch.lock:
                    watch.created[name] = time.monotonic()
                kernels.create(kernel_body(name, pooled=pooled))

            before = requests()
            cpu = CpuMeter(pids)
            with ThreadPoolExecutor(len(names), thread_name_prefix="creator") as creators:
                for future in [creators.submit(create, n) for n in names]:
                    future.result()
            wait_until(lambda: watch.done(names), TIMEOUT, "every kernel to answer")
            used = cpu.used()
            written = requests_since(before, requests(), per=len(names), writes_only=True, digits=2)
        finally:
            watch.stop()
    if watch.errors:
        raise RuntimeError(f"kernels that did not answer 1+1: {watch.errors}")
    return {
        "seen": [round(watch.listed[n] - watch.created[n], 4) for n in names],
        "ready": [round(watch.ready[n] - watch.created[n], 4) for n in names],
        "reply": [round(watch.replied[n] - watch.created[n], 4) for n in names],
        "cpu_seconds": used,
        "writes_per_kernel": written,
    }


def pods_in(rest: RestClient, namespace: str) -> list[dict[str, Any]]:
    listed = ResourceClient(rest, PODS, namespace=namespace).list(
        limit=0, continue_token="", resource_version=""
    )
    return list(listed["items"])


def delete_all(rest: RestClient, namespace: str, resource: Resource, names: list[str]) -> None:
    """Delete ``names`` and wait until no Pod is left in the namespace."""
    client = ResourceClient(rest, resource, namespace=namespace)
    for name in names:
        client.delete(name)
    wait_until(lambda: not pods_in(rest, namespace), TIMEOUT, "the Pods to go", interval=0.2)


def fill_pool(rest: RestClient, namespace: str, replicas: int) -> float:
    """Create the pool and wait until all its standby kernels are idle and Ready."""
    pools = ResourceClient(rest, POOLS, namespace=namespace)
    started = time.monotonic()
    pools.create(pool_body(replicas))

    def full() -> bool:
        status = pools.get(POOL).get("status") or {}
        return bool(status.get("readyReplicas") == replicas == status.get("replicas"))

    return wait_until(full, TIMEOUT, "the pool to fill", interval=0.2) - started


def claims(metrics: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in metrics.splitlines():
        if line.startswith("kernel_pool_claims_total{"):
            result = line.split('result="', 1)[1].split('"', 1)[0]
            out[result] = out.get(result, 0.0) + float(line.split()[-1])
    return out


def request_seconds(metrics: str) -> dict[str, float]:
    """The controller's mean API request latency by verb (``rest_client_request_duration``)."""
    sums: dict[str, float] = {}
    counts: dict[str, float] = {}
    for line in metrics.splitlines():
        for suffix, into in (("_sum{", sums), ("_count{", counts)):
            if line.startswith("rest_client_request_duration_seconds" + suffix):
                verb = line.split('verb="', 1)[1].split('"', 1)[0]
                into[verb] = into.get(verb, 0.0) + float(line.split()[-1])
    return {verb: round(sums[verb] / n, 4) for verb, n in counts.items() if n}


def summary(values: list[float]) -> dict[str, float]:
    return {
        "p50": round(percentile(values, 0.5), 3),
        "p99": round(percentile(values, 0.99), 3),
        "max": round(max(values), 3),
    }


def table(results: dict[str, Any]) -> str:
    lines = [
        f"{results['kernels']} Kernels created at once, {results['rounds']} rounds, "
        "real kernels on the local node (seconds from the create request)",
        "",
        "| phase | created, seen by a watch p50 / p99 | to Ready p50 | p99 | max "
        "| to first execute_reply p50 | p99 | max |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for phase in ("pool", "cold"):
        w, r, e = (results[phase][what] for what in ("seen", "ready", "reply"))
        lines.append(
            f"| {phase} | {w['p50']} / {w['p99']} | {r['p50']} | {r['p99']} | {r['max']} "
            f"| {e['p50']} | {e['p99']} | {e['max']} |"
        )
    lines.append("")
    for phase in ("pool", "cold"):
        used = results[phase]["cpu_seconds"][-1]
        lines.append(f"CPU seconds during the last {phase} burst: {json.dumps(used)}")
    for phase in ("pool", "cold"):
        written = results[phase]["writes_per_kernel"][-1]
        lines.append(f"API writes per Kernel during the last {phase} burst: {json.dumps(written)}")
    lines.append(f"controller's mean API request seconds: {results['request_seconds_mean']}")
    lines.append(
        f"pool fill (N standby kernels idle and Ready): {results['pool_fill_seconds']} s; "
        f"claims: {results['claims']}"
    )
    return "\n".join(lines)


def rounds(
    rest: RestClient,
    namespace: str,
    *,
    kernels: int,
    count: int,
    pids: dict[str, int],
    requests: RequestTotals,
) -> dict[str, Any]:
    """``count`` rounds of a pooled burst then a cold one, ``kernels`` Kernels each."""
    cpu: dict[str, list[dict[str, float]]] = {"pool": [], "cold": []}
    written: dict[str, list[dict[str, float]]] = {"pool": [], "cold": []}
    samples: dict[str, dict[str, list[float]]] = {
        phase: {"seen": [], "ready": [], "reply": []} for phase in ("pool", "cold")
    }
    fills: list[float] = []
    for round_ in range(count):
        fills.append(round(fill_pool(rest, namespace, kernels), 2))
        names = [f"pooled-{round_}-{i}" for i in range(kernels)]
        got = burst(rest, namespace, names, pooled=True, pids=pids, requests=requests)
        ResourceClient(rest, POOLS, namespace=namespace).delete(POOL)
        delete_all(rest, namespace, KERNELS, names)
        names = [f"cold-{round_}-{i}" for i in range(kernels)]
        cold = burst(rest, namespace, names, pooled=False, pids=pids, requests=requests)
        delete_all(rest, namespace, KERNELS, names)
        for phase, figures in (("pool", got), ("cold", cold)):
            cpu[phase].append(figures["cpu_seconds"])
            written[phase].append(figures["writes_per_kernel"])
            for what in ("seen", "ready", "reply"):
                samples[phase][what] += figures[what]
        print(
            f"round {round_ + 1}: pool ready p50 {percentile(got['ready'], 0.5):.3f} s, "
            f"cold ready p50 {percentile(cold['ready'], 0.5):.3f} s",
            flush=True,
        )
    results: dict[str, Any] = {"kernels": kernels, "rounds": count, "pool_fill_seconds": fills}
    for phase, figures in samples.items():
        results[phase] = {what: summary(values) for what, values in figures.items()}
        results[phase]["samples"] = figures
        results[phase]["cpu_seconds"] = cpu[phase]
        results[phase]["writes_per_kernel"] = written[phase]
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kernels", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the logs and data")
    parser.add_argument(
        "--controller-flag",
        action="append",
        default=[],
        metavar="FLAG",
        help="a flag for the controller beside the defaults (repeatable), e.g. --workers=8",
    )
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="pool-bench-"))
    plane = ControlPlane(bin_dir=default_bin_dir(), work_dir=work / "cluster")
    crds = sorted((REPO / "config" / "crd" / "bases").glob("*.yaml"))
    plane.start(before_controller_manager=lambda: install_crds(plane.kubeconfig_path, crds))
    kubeconfig = str(plane.kubeconfig_path)
    api = new_api_client(kubeconfig, pool_size=2 * args.kernels + 8)
    rest = RestClient(api)
    namespace = str(
        ResourceClient(rest, NAMESPACES).create({"metadata": {"generateName": "pool-bench-"}})[
            "metadata"
        ]["name"]
    )
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}:{REPO / 'hack'}"}
    node = Proc(
        [sys.executable, "-m", "localnode", f"--kubeconfig={kubeconfig}",
         f"--namespace={namespace}", f"--state-dir={work / 'node'}"],
        work / "node.log",
        env,
    )  # fmt: skip
    metrics_port, probe_port = free_port(), free_port()
    controller = Proc(
        [str(Path(sys.executable).with_name("kernel-controller")), f"--kubeconfig={kubeconfig}",
         f"--namespaces={namespace}", f"--metrics-addr=127.0.0.1:{metrics_port}",
         f"--probe-addr=127.0.0.1:{probe_port}", *args.controller_flag],
        work / "controller.log",
    )  # fmt: skip
    pids = {name: proc.pid for name, proc in plane.processes.items() if proc.pid is not None}
    pids |= {"node": node.popen.pid, "controller": controller.popen.pid, "bench": os.getpid()}
    finished = False
    try:
        wait_until(
            lambda: http_ok(f"http://127.0.0.1:{probe_port}/readyz") is not None, 120, "ready"
        )
        results = rounds(
            rest,
            namespace,
            kernels=args.kernels,
            count=args.rounds,
            pids=pids,
            requests=lambda: by_verb_and_resource(plane.request_totals()),
        )
        metrics = http_ok(f"http://127.0.0.1:{metrics_port}/metrics") or ""
        results |= {"claims": claims(metrics), "request_seconds_mean": request_seconds(metrics)}
        finished = True
    finally:
        close_api_client(api)
        controller.stop()
        node.stop()
        plane.stop()
        if finished and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"logs and data kept in {work}", file=sys.stderr)
    out = REPO / ".bench" / "pool.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(table(results))
    print(f"chart: {pool_chart(results)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
