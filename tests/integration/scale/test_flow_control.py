"""API Priority and Fairness with few seats: the controller (no client-side throttle, the
default) gets ``429`` answers during a 500-Kernel burst, obeys every ``Retry-After`` and loses
nothing. The priority level is ``config/flowcontrol``'s, shrunk to a few seats that refuse
instead of queueing; the proof that no retry came early is the API server's audit log."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from controllerprocess import ControllerProcess
from deploytest import CONFIG, Doc, apply, find, render
from eventually import eventually
from informers import Resource, ResourceClient, RestClient
from integration.scale.conftest import CONTROLLER_USER
from integration.scale.population import NamespaceWatch, create_kernels, create_namespace
from localcluster import ControlPlane
from reconcilers.controller import EVENTS

NAMESPACE = "burst"
BURST = 500
FLOW_SCHEMAS = Resource("flowcontrol.apiserver.k8s.io", "v1", "flowschemas", namespaced=False)
FLOW_RESOURCES = {
    "FlowSchema": FLOW_SCHEMAS,
    "PriorityLevelConfiguration": Resource(
        "flowcontrol.apiserver.k8s.io", "v1", "prioritylevelconfigurations", namespaced=False
    ),
}


def tight(docs: list[Doc]) -> list[Doc]:
    """``config/flowcontrol`` with one share (3 seats of the API server's 600) that can
    neither borrow nor lend, and refuses at once when they are busy."""
    level = find(docs, "PriorityLevelConfiguration")
    level["spec"]["limited"] = {
        "nominalConcurrencyShares": 1,
        "lendablePercent": 0,
        "borrowingLimitPercent": 0,
        "limitResponse": {"type": "Reject"},
    }
    return docs


def in_effect(rest: RestClient) -> bool:
    """The API server found the FlowSchema's priority level (``Dangling`` is ``False``)."""
    schema = ResourceClient(rest, FLOW_SCHEMAS).get("kernel-controller")
    conditions = (schema.get("status") or {}).get("conditions") or ()
    return any(c.get("type") == "Dangling" and c.get("status") == "False" for c in conditions)


def when(event: dict[str, Any], field: str) -> float:
    return datetime.fromisoformat(event[field]).timestamp()


@pytest.mark.timeout(900)
def test_a_burst_under_tight_priority_and_fairness_is_served_obeying_retry_after(
    plane: ControlPlane,
    admin_kubeconfig: str,
    admin_rest: RestClient,
    spawn: Callable[..., ControllerProcess],
) -> None:
    flowcontrol = tight(render(CONFIG / "flowcontrol"))
    apply(flowcontrol, kubeconfig=admin_kubeconfig)
    eventually(lambda: in_effect(admin_rest), timeout=60, message="FlowSchema not in effect")
    create_namespace(admin_rest, NAMESPACE)
    watch = NamespaceWatch(admin_rest, NAMESPACE)
    try:
        proc = spawn("--workers=16", "--log-level=debug")
        proc.wait_ready(timeout=120)
        create_kernels(admin_rest, NAMESPACE, [f"k-{n:03d}" for n in range(BURST)])
        eventually(
            lambda: watch.counts() == (BURST, BURST, BURST),
            timeout=600,
            interval=1.0,
            message="the burst was not served",
        )
        events = ResourceClient(admin_rest, EVENTS, namespace=NAMESPACE)

        def created_events() -> int:
            items = events.list(limit=0, continue_token="", resource_version="")["items"]
            return sum(1 for e in items if e.get("reason") == "PodCreated")

        eventually(lambda: created_events() == BURST, timeout=120, message="Events lost")
        refused = sum(
            value
            for (name, labels), value in proc.metrics().items()
            if name == "rest_client_requests_total" and dict(labels).get("code") == "429"
        )
        log = proc.log_lines()
    finally:
        watch.stop()
        for doc in flowcontrol:  # the next tests' controller gets its usual share again
            ResourceClient(admin_rest, FLOW_RESOURCES[doc["kind"]]).delete(doc["metadata"]["name"])

    audit = {
        e["auditID"]: e for e in plane.audit_events() if e["user"]["username"] == CONTROLLER_USER
    }
    throttled = [e for e in audit.values() if (e.get("responseStatus") or {}).get("code") == 429]
    retry_after = {
        line["audit_id"]: line["retry_after"]
        for line in log
        if line.get("msg") == "throttled by the API server"
    }
    # Each retry names the refused request it repeats: (refused audit id, retry's audit id).
    retries = [
        (line["previous_audit_id"], line["audit_id"])
        for line in log
        if line.get("previous_audit_id") and line.get("audit_id")
    ]
    early = []
    for refused_id, retry_id in retries:
        answered = when(audit[refused_id], "stageTimestamp")
        sent = when(audit[retry_id], "requestReceivedTimestamp")
        if sent < answered + float(retry_after[refused_id] or 0):
            early.append((refused_id, retry_id, sent - answered, retry_after[refused_id]))

    print(  # noqa: T201
        f"{refused:.0f} requests answered 429 (audit: {len(throttled)}); "
        f"{len(retries)} retries checked; Retry-After values seen: "
        f"{sorted(set(retry_after.values()))}"
    )
    assert refused > 0 and throttled, "the priority level never refused a request"
    assert len(retries) >= len(throttled) * 0.9  # nearly every 429 was retried (and logged)
    assert early == [], "a request was sent again before its Retry-After"
