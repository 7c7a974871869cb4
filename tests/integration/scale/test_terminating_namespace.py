"""A namespace with 200 Kernels is deleted while its Pods are bound to a node that never
confirms a deletion (Kubernetes 1.33+ deletes a namespace's Pods first and waits for them).
When the stuck Pods are finally force-deleted, the Kernels outlive them until the namespace
controller comes back for them: every create there is refused (403, ``NamespaceTerminating``).
The controller, running and then restarted, makes fewer writes in that namespace than it has
Kernels, and a Kernel created elsewhere at that moment gets its Pod and Service within 2 s."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes import client

from controllerprocess import ControllerProcess
from eventually import eventually
from informers import RequestInfo, ResourceClient, RestClient
from integration.scale.conftest import CONTROLLER_USER
from integration.scale.population import (
    NODES,
    NamespaceWatch,
    apiserver_request_total,
    create_kernels,
    create_namespace,
)
from kerneltest import kernel_body
from localcluster import ControlPlane
from reconcilers.controller import KERNELS, PODS

DOOMED = "doomed"
BYSTANDERS = "bystanders"
KERNELS_IN_DOOMED = 200
NODE = "never-confirms"
SERVED_WITHIN_SECONDS = 2.0
WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection"}
QUIET_SECONDS = 3.0


def doomed_kernel(name: str) -> dict[str, Any]:
    body = kernel_body(name)
    body["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 5
    return body


def bind(rest: RestClient, namespace: str, name: str, node: str) -> None:
    """Bind a Pod to ``node`` as the scheduler would (``pods/binding``)."""
    rest.request(
        "POST",
        PODS.path(namespace=namespace, name=name, subresource="binding"),
        info=RequestInfo("create", "pods/binding"),
        body={
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": name},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        },
    )


def served_within(rest: RestClient, watch: NamespaceWatch, name: str) -> float:
    """Create Kernel ``name``; return the seconds until both its Pod and Service were seen."""
    created = time.monotonic()
    ResourceClient(rest, KERNELS, namespace=BYSTANDERS).create(kernel_body(name))
    eventually(
        lambda: watch.pod_seen(name) and watch.service_seen(name),
        timeout=60,
        interval=0.01,
        message=f"{name} not served",
    )
    return max(watch.pod_seen(name) or 0.0, watch.service_seen(name) or 0.0) - created


def refused_creates(totals: dict[tuple[str, str, str], float]) -> float:
    return sum(v for (verb, _, code), v in totals.items() if verb == "POST" and code == "403")


def quiet_since(plane: ControlPlane, seconds: float) -> bool:
    """Whether the controller made no write in the last ``seconds`` (audit log)."""
    last = max(
        (
            datetime.fromisoformat(e["stageTimestamp"])
            for e in plane.audit_events()
            if e["user"]["username"] == CONTROLLER_USER and e["verb"] in WRITE_VERBS
        ),
        default=None,
    )
    return last is None or (datetime.now(UTC) - last).total_seconds() >= seconds


def controller_writes_in(plane: ControlPlane, namespace: str, since: datetime) -> list[str]:
    """The controller's writes in ``namespace`` since ``since``, from the audit log."""
    found = []
    for event in plane.audit_events():
        ref = event.get("objectRef") or {}
        received = datetime.fromisoformat(event["requestReceivedTimestamp"])
        if (
            event["user"]["username"] == CONTROLLER_USER
            and ref.get("namespace") == namespace
            and event["verb"] in WRITE_VERBS
            and received >= since
        ):
            code = (event.get("responseStatus") or {}).get("code")
            found.append(f"{event['verb']} {ref.get('resource')} {ref.get('name', '')} {code}")
    return found


@pytest.mark.timeout(600)
def test_a_deleted_namespace_costs_less_than_one_write_per_kernel(
    plane: ControlPlane,
    admin_api: client.ApiClient,
    admin_rest: RestClient,
    spawn: Callable[..., ControllerProcess],
) -> None:
    for namespace in (DOOMED, BYSTANDERS):
        create_namespace(admin_rest, namespace)
    doomed = NamespaceWatch(admin_rest, DOOMED)
    bystanders = NamespaceWatch(admin_rest, BYSTANDERS)
    try:
        proc = spawn()
        proc.wait_ready()
        names = [f"k-{n:03d}" for n in range(KERNELS_IN_DOOMED)]
        create_kernels(admin_rest, DOOMED, [doomed_kernel(name) for name in names])
        full = (KERNELS_IN_DOOMED,) * 3
        eventually(lambda: doomed.counts() == full, timeout=180, message="not all served")
        ResourceClient(admin_rest, NODES).create({"metadata": {"name": NODE}})
        for name in names:
            bind(admin_rest, DOOMED, name, NODE)
        # The controller mirrors the bindings (status, Events); only once it is quiet does
        # the deletion begin, so that every write counted below is one it caused.
        eventually(lambda: quiet_since(plane, QUIET_SECONDS), timeout=120, message="never quiet")

        before = apiserver_request_total(plane)
        deleted_at = datetime.now(UTC)
        client.CoreV1Api(admin_api).delete_namespace(DOOMED)
        pods = ResourceClient(admin_rest, PODS, namespace=DOOMED)

        def all_terminating() -> bool:
            items = pods.list(limit=0, continue_token="", resource_version="")["items"]
            return len(items) == KERNELS_IN_DOOMED and all(
                p["metadata"].get("deletionTimestamp") for p in items
            )

        eventually(all_terminating, timeout=60, message="the Pods were not deleted first")
        # The node never confirms: an admin force-deletes the stuck Pods (as the Pod GC does
        # once the Node is gone). Now the Kernels outlive their Pods in a terminating
        # namespace, until the namespace controller's next pass deletes them.
        for name in names:
            pods.delete(name, grace_period=0)
        first = served_within(admin_rest, bystanders, "first")

        proc.terminate()  # a restart while the namespace terminates: no memory of it
        restarted = spawn()
        restarted.wait_ready()
        second = served_within(admin_rest, bystanders, "second")

        def namespace_gone() -> bool:
            try:
                client.CoreV1Api(admin_api).read_namespace(DOOMED)
            except client.ApiException as err:
                return err.status == 404
            return False

        eventually(namespace_gone, timeout=180, interval=0.5, message="namespace not deleted")
        forgotten = f"namespace {DOOMED} has no Kernel left: forgotten as terminating"
        with contextlib.suppress(AssertionError):  # asserted below, after the counts
            eventually(
                lambda: any(line.get("msg") == forgotten for line in restarted.log_lines()),
                timeout=30,
            )
        errors = [
            line for p in (proc, restarted) for line in p.log_lines() if line["level"] == "error"
        ]
        after = apiserver_request_total(plane)
        writes = controller_writes_in(plane, DOOMED, deleted_at)
        refused = refused_creates(after) - refused_creates(before)
    finally:
        doomed.stop()
        bystanders.stop()

    print(  # noqa: T201
        f"bystanders served in {first:.2f} s and {second:.2f} s (restarted); "
        f"{len(writes)} controller writes in the deleted namespace: {writes}; "
        f"{refused:.0f} creates refused by the API server"
    )
    assert first < SERVED_WITHIN_SECONDS
    assert second < SERVED_WITHIN_SECONDS
    assert len(writes) < KERNELS_IN_DOOMED
    assert refused < KERNELS_IN_DOOMED
    assert all(w.endswith(" 403") for w in writes), "only refused creates, no status writes"
    assert errors == []
    # its name may be reused: the memory of it is dropped with its last Kernel
    assert any(line.get("msg") == forgotten for line in restarted.log_lines())
