"""Helpers for Kernel tests on the real control plane: plain JSON clients for the test's own
reads and writes (not counted as the controller's), and a Kernel body builder."""

from __future__ import annotations

from typing import Any

from informers import ResourceClient, RestClient
from reconcilers.controller import EVENTS, KERNELS, PODS, POOLS, SECRETS, SERVICES


class Clients:
    """Plain JSON clients for the test's own reads and writes (not counted)."""

    def __init__(self, rest: RestClient, namespace: str) -> None:
        self.namespace = namespace
        self.kernels = ResourceClient(rest, KERNELS, namespace=namespace)
        self.pods = ResourceClient(rest, PODS, namespace=namespace)
        self.services = ResourceClient(rest, SERVICES, namespace=namespace)
        self.secrets = ResourceClient(rest, SECRETS, namespace=namespace)
        self.events = ResourceClient(rest, EVENTS, namespace=namespace)
        self.pools = ResourceClient(rest, POOLS, namespace=namespace)

    def get(self, resource: ResourceClient, name: str) -> dict[str, Any] | None:
        try:
            return resource.get(name)
        except Exception:
            return None

    def set_pod_status(self, name: str, status: dict[str, Any]) -> None:
        """Write a Pod's status as a kubelet would (the status subresource)."""
        self.pods.patch(name, {"status": status}, subresource="status")

    def kernel_events(self, name: str, *, kind: str = "Kernel") -> list[dict[str, Any]]:
        items = self.events.list(limit=0, continue_token="", resource_version="")["items"]
        return [
            e
            for e in items
            if e["involvedObject"].get("name") == name and e["involvedObject"].get("kind") == kind
        ]

    def list_pods(self, selector: str = "") -> list[dict[str, Any]]:
        """The namespace's Pods matching the label ``selector``."""
        pods = ResourceClient(
            self.pods.rest, PODS, namespace=self.namespace, label_selector=selector
        )
        items: list[dict[str, Any]] = pods.list(limit=0, continue_token="", resource_version="")[
            "items"
        ]
        return items


def pool_body(name: str, replicas: int, **spec: Any) -> dict[str, Any]:
    """A KernelPool of ``replicas`` idle kernels, with the image ``kernel_body`` uses."""
    container: dict[str, Any] = {"name": "main", "image": "elyra/kernel-py:3.2.3"}
    container.update(spec.pop("container", {}))
    body: dict[str, Any] = {
        "apiVersion": "jupyter.org/v1alpha1",
        "kind": "KernelPool",
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "template": {"spec": {"containers": [container]}}},
    }
    body["spec"].update(spec)
    return body


def kernel_body(name: str, **spec: Any) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "main", "image": "elyra/kernel-py:3.2.3"}
    container.update(spec.pop("container", {}))
    body: dict[str, Any] = {
        "apiVersion": "jupyter.org/v1",
        "kind": "Kernel",
        "metadata": {"name": name},
        "spec": {"template": {"spec": {"containers": [container]}}},
    }
    body["metadata"].update(spec.pop("metadata", {}))
    body["spec"]["template"].update(spec.pop("template", {}))
    body["spec"].update(spec)
    return body


def ready_kernel(clients: Clients, name: str) -> dict[str, Any] | None:
    """The Kernel ``name`` if its ``Ready`` condition is True, else None (for ``eventually``)."""
    kernel = clients.get(clients.kernels, name)
    for cond in ((kernel or {}).get("status") or {}).get("conditions") or ():
        if cond["type"] == "Ready" and cond["status"] == "True":
            return kernel
    return None
