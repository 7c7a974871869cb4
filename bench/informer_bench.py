"""Informer benchmark: time to sync and memory per cached object for N Pods.

Usage: .venv/bin/python bench/informer_bench.py [--count 10000] [--kubeconfig PATH]

Without --kubeconfig it starts its own local control plane (hack/localcluster) in a temporary
directory and stops it afterwards. It creates N Pods shaped like kernel Pods (labels, env, five
ports, a readiness probe) in a fresh namespace, then, in this process:

- syncs a SharedInformer (paginated LIST of 500, watch) and reports the time to sync;
- reports the memory the cache holds per object (tracemalloc, and the process RSS growth);
- for comparison, parses the same LIST with the ``kubernetes`` client's generated models.

Prints a table and writes the figures as JSON to ``.bench/informer.json``.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import sys
import tempfile
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "hack"))

from kubernetes import client

from informers.client import RestClient
from informers.kubeconfig import close_api_client, new_api_client
from informers.resource import Object, Resource, ResourceClient
from informers.shared_informer import SharedInformer
from localcluster import ControlPlane, default_bin_dir

PODS = Resource("", "v1", "pods")
NAMESPACES = Resource("", "v1", "namespaces", namespaced=False)


def kernel_like_pod(i: int) -> dict[str, Any]:
    name = f"bench-{i:05d}"
    ports = {"SHELL": 52317, "IOPUB": 52318, "STDIN": 52319, "HB": 52320, "CONTROL": 52321}
    env = [{"name": "KERNEL_ID", "value": f"00000000-0000-4000-8000-{i:012d}"}]
    env += [{"name": f"KERNEL_{k}_PORT", "value": str(v)} for k, v in ports.items()]
    return {
        "metadata": {
            "name": name,
            "labels": {"jupyter.org/kernel-name": name, "app": "bench"},
            "annotations": {"example.com/owner": "bench"},
        },
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": name,
                    "image": "elyra/kernel-py:3.2.3",
                    "env": env,
                    "ports": [{"containerPort": p} for p in ports.values()],
                    "readinessProbe": {"tcpSocket": {"port": 52317}, "periodSeconds": 2},
                }
            ],
        },
    }


def strip_managed_fields(obj: Object) -> Object:
    obj.get("metadata", {}).pop("managedFields", None)
    return obj


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def sync(pods: ResourceClient) -> SharedInformer:
    informer = SharedInformer(name="pods", lister_watcher=pods, transform=strip_managed_fields)
    informer.start()
    assert informer.wait_for_sync(600)
    return informer


def stop(informer: SharedInformer) -> None:
    informer.stop()
    informer.join()


def traced_growth(before: tracemalloc.Snapshot) -> int:
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    return sum(s.size_diff for s in after.compare_to(before, "filename"))


def list_models(core: client.CoreV1Api, namespace: str) -> list[Any]:
    models: list[Any] = []
    token = None
    while True:
        page = core.list_namespaced_pod(namespace, limit=500, _continue=token)
        models.extend(page.items)
        token = page.metadata._continue if page.metadata else None
        if not token:
            return models


def run(kubeconfig: str, count: int) -> dict[str, float]:
    api = new_api_client(kubeconfig)
    core = client.CoreV1Api(api)
    rest = RestClient(api)
    namespaces = ResourceClient(rest, NAMESPACES)
    namespace: str = namespaces.create({"metadata": {"generateName": "bench-"}})["metadata"]["name"]
    pods = ResourceClient(rest, PODS, namespace=namespace)
    started = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda i: pods.create(kernel_like_pod(i)), range(count)))
    create_seconds = time.monotonic() - started

    # 1. Time to sync and RSS growth, with nothing else measuring.
    gc.collect()
    rss_before = rss_mib()
    started = time.monotonic()
    informer = sync(pods)
    sync_seconds = time.monotonic() - started
    gc.collect()
    rss_after_sync = rss_mib()
    rss_growth = rss_after_sync - rss_before
    peak_rss_after_sync = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    assert len(informer.indexer) == count, len(informer.indexer)
    stop(informer)
    del informer

    # 2. Bytes the cache holds, counted by tracemalloc (slow, so timed separately above).
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    informer = sync(pods)
    gc.collect()
    cache_bytes = traced_growth(before)
    stop(informer)
    del informer

    # 3. The same list parsed into the client's generated models, for comparison.
    gc.collect()
    started = time.monotonic()
    models = list_models(core, namespace)
    model_seconds = time.monotonic() - started
    assert len(models) == count
    del models
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    models = list_models(core, namespace)
    model_bytes = traced_growth(before)
    del models

    namespaces.delete(namespace)
    close_api_client(api)
    return {
        "objects": count,
        "create_seconds": round(create_seconds, 2),
        "sync_seconds": round(sync_seconds, 2),
        "cache_kib_per_object": round(cache_bytes / count / 1024, 2),
        "rss_growth_mib": round(rss_growth, 1),
        "rss_after_sync_mib": round(rss_after_sync, 1),
        "peak_rss_after_sync_mib": round(peak_rss_after_sync, 1),
        "client_models_seconds": round(model_seconds, 2),
        "client_models_kib_per_object": round(model_bytes / count / 1024, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--kubeconfig", help="use this cluster instead of a fresh local one")
    args = parser.parse_args(argv)

    plane: ControlPlane | None = None
    if args.kubeconfig:
        kubeconfig = args.kubeconfig
    else:
        work = Path(tempfile.mkdtemp(prefix="informer-bench-"))
        plane = ControlPlane(bin_dir=default_bin_dir(), work_dir=work)
        plane.start()
        kubeconfig = str(plane.kubeconfig_path)
    try:
        figures = run(kubeconfig, args.count)
    finally:
        if plane is not None:
            plane.stop()
    out = REPO / ".bench" / "informer.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(figures, indent=2))
    width = max(len(k) for k in figures)
    for key, value in figures.items():
        print(f"{key:<{width}}  {value}")
    print(f"(written to {out})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
