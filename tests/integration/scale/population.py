"""Many Kernels at once for the scale tests: create them from a thread pool, and watch a
namespace with the test's own informers (when each Pod and Service first appeared, which
Kernels have a status), so waiting for thousands of objects never lists them repeatedly."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from informers import FuncHandler, Resource, ResourceClient, RestClient, SharedInformer
from kerneltest import kernel_body
from reconcilers.controller import KERNELS, PODS, SERVICES

NAMESPACES = Resource("", "v1", "namespaces", namespaced=False)
NODES = Resource("", "v1", "nodes", namespaced=False)
CREATE_THREADS = 16


def create_namespace(rest: RestClient, name: str) -> None:
    ResourceClient(rest, NAMESPACES).create({"metadata": {"name": name}})


def create_kernels(
    rest: RestClient, namespace: str, kernels: Iterable[str | dict[str, Any]]
) -> None:
    """Create Kernels (a name: ``kerneltest.kernel_body``'s) from a pool of threads."""
    client = ResourceClient(rest, KERNELS, namespace=namespace)
    bodies = [kernel_body(k) if isinstance(k, str) else k for k in kernels]
    with ThreadPoolExecutor(CREATE_THREADS, thread_name_prefix="create-kernels") as pool:
        for result in [pool.submit(client.create, body) for body in bodies]:
            result.result()


class NamespaceWatch:
    """The test's informers on one namespace's Kernels, Pods and Services.

    ``pods``/``services``: name -> monotonic time first seen; ``with_status``: names of the
    Kernels whose status has a Ready condition. Guarded by ``lock``.
    """

    def __init__(self, rest: RestClient, namespace: str) -> None:
        self.namespace = namespace
        self.lock = threading.Lock()
        self.pods: dict[str, float] = {}
        self.services: dict[str, float] = {}
        self.with_status: set[str] = set()
        self.informers = [
            self._informer(rest, PODS, namespace, self._seen(self.pods)),
            self._informer(rest, SERVICES, namespace, self._seen(self.services)),
            self._informer(rest, KERNELS, namespace, self._status()),
        ]
        for informer in self.informers:
            informer.start()
        for informer in self.informers:
            assert informer.wait_for_sync(60), f"{informer.name} never synced"

    @staticmethod
    def _informer(
        rest: RestClient, resource: Resource, namespace: str, on: FuncHandler
    ) -> SharedInformer:
        informer = SharedInformer(
            name=f"test-{resource.plural}-{namespace}",
            lister_watcher=ResourceClient(rest, resource, namespace=namespace),
        )
        informer.add_event_handler(on)
        return informer

    def _seen(self, into: dict[str, float]) -> FuncHandler:
        def seen(obj: Any) -> None:
            with self.lock:
                into.setdefault(obj["metadata"]["name"], time.monotonic())

        return FuncHandler(add=lambda obj, _: seen(obj), update=lambda _, new: seen(new))

    def _status(self) -> FuncHandler:
        def seen(kernel: Any) -> None:
            conditions = (kernel.get("status") or {}).get("conditions") or ()
            if any(c.get("type") == "Ready" for c in conditions):
                with self.lock:
                    self.with_status.add(kernel["metadata"]["name"])

        return FuncHandler(add=lambda obj, _: seen(obj), update=lambda _, new: seen(new))

    def counts(self) -> tuple[int, int, int]:
        with self.lock:
            return len(self.pods), len(self.services), len(self.with_status)

    def pod_seen(self, name: str) -> float | None:
        with self.lock:
            return self.pods.get(name)

    def service_seen(self, name: str) -> float | None:
        with self.lock:
            return self.services.get(name)

    def stop(self) -> None:
        for informer in self.informers:
            informer.stop()
        for informer in self.informers:
            informer.join()
