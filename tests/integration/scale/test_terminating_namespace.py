"""A namespace with 200 Kernels is deleted while its Pods are bound to a node that never
confirms a deletion (Kubernetes 1.33+ deletes a namespace's Pods first and waits for them).
When the stuck Pods are finally force-deleted, the Kernels outlive them until the namespace
controller comes back for them: every create there is refused (403, ``NamespaceTerminating``).
The controller, running and then restarted, makes fewer writes in that namespace than it has
Kernels, and a Kernel created elsewhere at that moment gets its Pod and Service within 2 s.

Both scopes: a controller serving every namespace watches Namespaces and writes nothing there
but refused creates (a restarted one may list a Kernel after its Namespace watch saw the
namespace go: one create, refused with ``404``); a namespace-scoped one (``--namespaces``)
learns from the first refused creates (at most one per worker in flight) and writes each
Kernel's ``PodTerminating`` status once."""

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
from informers import Conflict, RequestInfo, ResourceClient, RestClient
from integration.scale.conftest import CONTROLLER_USER
from integration.scale.population import (
    NODES,
    NamespaceWatch,
    create_kernels,
    create_namespace,
)
from kerneltest import kernel_body
from localcluster import ControlPlane
from reconcilers.controller import KERNELS, PODS

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
    """Create Kernel ``name`` in the watched namespace; the seconds until both its Pod and
    Service were seen."""
    created = time.monotonic()
    ResourceClient(rest, KERNELS, namespace=watch.namespace).create(kernel_body(name))
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
        code = (event.get("responseStatus") or {}).get("code")
        if (
            event["user"]["username"] == CONTROLLER_USER
            and ref.get("namespace") == namespace
            and event["verb"] in WRITE_VERBS
            and received >= since
            and code != 429  # refused before it was executed, and sent again: not a write
        ):
            sub = f"/{ref['subresource']}" if ref.get("subresource") else ""
            found.append(f"{event['verb']} {ref.get('resource')}{sub} {ref.get('name', '')} {code}")
    return found


WORKERS = 4
SCOPES = ("cluster-wide", "namespace-scoped")


@pytest.mark.timeout(600)
@pytest.mark.parametrize("scope", SCOPES)
def test_a_deleted_namespace_costs_less_than_one_write_per_kernel(
    plane: ControlPlane,
    admin_api: client.ApiClient,
    admin_rest: RestClient,
    spawn: Callable[..., ControllerProcess],
    scope: str,
) -> None:
    doomed_ns, bystanders_ns = f"doomed-{scope}", f"bystanders-{scope}"
    args = [f"--workers={WORKERS}"]
    if scope == "namespace-scoped":
        args.append(f"--namespaces={doomed_ns},{bystanders_ns}")
    for namespace in (doomed_ns, bystanders_ns):
        create_namespace(admin_rest, namespace)
    doomed = NamespaceWatch(admin_rest, doomed_ns)
    bystanders = NamespaceWatch(admin_rest, bystanders_ns)
    try:
        proc = spawn(*args)
        proc.wait_ready()
        names = [f"k-{n:03d}" for n in range(KERNELS_IN_DOOMED)]
        create_kernels(admin_rest, doomed_ns, [doomed_kernel(name) for name in names])
        full = (KERNELS_IN_DOOMED,) * 3
        eventually(lambda: doomed.counts() == full, timeout=180, message="not all served")
        with contextlib.suppress(Conflict):  # made by the other scope's run
            ResourceClient(admin_rest, NODES).create({"metadata": {"name": NODE}})
        for name in names:
            bind(admin_rest, doomed_ns, name, NODE)
        # The controller mirrors the bindings (status, Events); only once it is quiet does
        # the deletion begin, so that every write counted below is one it caused.
        eventually(lambda: quiet_since(plane, QUIET_SECONDS), timeout=120, message="never quiet")

        before = plane.request_totals()
        deleted_at = datetime.now(UTC)
        client.CoreV1Api(admin_api).delete_namespace(doomed_ns)
        pods = ResourceClient(admin_rest, PODS, namespace=doomed_ns)

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
        restarted = spawn(*args)
        restarted.wait_ready()
        second = served_within(admin_rest, bystanders, "second")

        def namespace_gone() -> bool:
            try:
                client.CoreV1Api(admin_api).read_namespace(doomed_ns)
            except client.ApiException as err:
                return err.status == 404
            return False

        eventually(namespace_gone, timeout=180, interval=0.5, message="namespace not deleted")
        forgotten = f"namespace {doomed_ns} forgotten as terminating"

        def forgot() -> bool:
            return any(forgotten in str(line.get("msg")) for line in restarted.log_lines())

        with contextlib.suppress(AssertionError):  # asserted below, after the counts
            eventually(forgot, timeout=30)
        errors = [
            line for p in (proc, restarted) for line in p.log_lines() if line["level"] == "error"
        ]
        after = plane.request_totals()
        writes = controller_writes_in(plane, doomed_ns, deleted_at)
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
    assert refused < KERNELS_IN_DOOMED
    # Refused creates: 403 while the namespace terminates, or 404 once it is gone (a Kernel
    # still in the informer's list after the Namespace watch saw its namespace go).
    refusals = [w for w in writes if w.endswith((" 403", " 404"))]
    statuses = [w for w in writes if w.startswith("patch kernels/status ")]
    if scope == "cluster-wide":
        assert len(writes) < KERNELS_IN_DOOMED
        assert writes == refusals, "only refused creates, no status writes"
    else:  # at most one refused create per worker in flight, per controller process
        assert len(refusals) <= 2 * WORKERS
        assert len(statuses) <= KERNELS_IN_DOOMED  # PodTerminating, once each
        assert sorted(writes) == sorted(refusals + statuses)
    assert errors == []
    # its name may be reused: the memory of a namespace is dropped once it is gone
    marked = f"namespace {doomed_ns} is being deleted"
    if any(marked in str(line.get("msg")) for line in restarted.log_lines()):
        assert forgot()
