"""The Kernel controller against the real control plane (SPEC §2, §3): children, identity,
drift, status, culling, failure, secret mode, name collisions, re-issued events."""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from apistate import CountingObserver
from eventually import eventually
from informers import RestClient
from kerneltest import Clients, kernel_body
from reconcilers.controller import KernelController
from reconcilers.model import KeyMode, ReconcileSettings

Start = Callable[..., KernelController]
NOW = "2026-01-01T00:00:00Z"


def ready_condition(kernel: dict[str, Any] | None) -> dict[str, Any] | None:
    for cond in ((kernel or {}).get("status") or {}).get("conditions") or ():
        if cond["type"] == "Ready":
            return dict(cond)
    return None


def wait_ready_reason(
    clients: Clients, name: str, reason: str, *, timeout: float = 30
) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        kernel = clients.get(clients.kernels, name)
        cond = ready_condition(kernel)
        return kernel if cond is not None and cond.get("reason") == reason else None

    kernel: dict[str, Any] = eventually(probe, timeout=timeout, message=f"Ready reason {reason}")
    return kernel


def test_new_kernel_gets_annotations_pod_and_service(
    start_controller: Start, clients: Clients
) -> None:
    start_controller()
    body = kernel_body(
        "k1",
        metadata={
            "labels": {"team": "a", "jupyter.org/kernel-name": "spoofed"},
            "annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": "{}",
                "example.com/keep": "yes",
                "example.com/kernel-thing": "dropped",
            },
        },
        template={"metadata": {"labels": {"tpl": "x"}, "annotations": {"tpl/anno": "y"}}},
        container={
            "env": [{"name": "KERNEL_SHELL_PORT", "value": "6000"}, {"name": "OTHER", "value": "1"}]
        },
    )
    clients.kernels.create(body)

    pod = eventually(lambda: clients.get(clients.pods, "k1"), timeout=30, message="no pod")
    service = eventually(lambda: clients.get(clients.services, "k1"), timeout=30, message="no svc")
    kernel = clients.kernels.get("k1")
    annotations = kernel["metadata"]["annotations"]
    kernel_id = annotations["jupyter.org/kernel-id"]
    host = f"k1.{clients.namespace}.svc.cluster.local"
    assert annotations["jupyter.org/kernel-connection-info"] == (
        '{"shell_port":6000,"stdin_port":52319,"iopub_port":52318,"control_port":52321,'
        f'"hb_port":52320,"ip":"{host}","key":"{kernel_id}","transport":"tcp",'
        '"signature_scheme":"hmac-sha256","kernel_name":""}'
    )

    container = pod["spec"]["containers"][0]
    assert container["name"] == "k1"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env == {
        "KERNEL_SHELL_PORT": "6000",
        "OTHER": "1",
        "KERNEL_ID": kernel_id,
        "KERNEL_IOPUB_PORT": "52318",
        "KERNEL_STDIN_PORT": "52319",
        "KERNEL_HB_PORT": "52320",
        "KERNEL_CONTROL_PORT": "52321",
    }
    assert container["readinessProbe"]["tcpSocket"]["port"] == 6000
    assert pod["spec"]["restartPolicy"] == "Never"
    labels = pod["metadata"]["labels"]
    assert labels == {"team": "a", "tpl": "x", "jupyter.org/kernel-name": "k1"}
    assert pod["metadata"]["annotations"] == {"example.com/keep": "yes", "tpl/anno": "y"}
    for child in (pod, service):
        (ref,) = child["metadata"]["ownerReferences"]
        assert ref == {
            "apiVersion": "jupyter.org/v1",
            "kind": "Kernel",
            "name": "k1",
            "uid": kernel["metadata"]["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["selector"] == {"jupyter.org/kernel-name": "k1"}
    assert [(p["name"], p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [
        ("shell-port", 6000, 6000),
        ("iopub-port", 52318, 52318),
        ("stdin-port", 52319, 52319),
        ("hb-port", 52320, 52320),
        ("control-port", 52321, 52321),
    ]
    kernel = wait_ready_reason(clients, "k1", "PodPending")
    assert kernel["status"]["readyReplicas"] == 0
    assert kernel["status"]["kernelID"] == kernel_id
    assert kernel["status"]["observedGeneration"] == kernel["metadata"]["generation"]
    (event,) = eventually(
        lambda: clients.kernel_events("k1"), timeout=30, message="no PodCreated Event"
    )  # one Normal Event for a new Kernel, not one per child
    assert (event["type"], event["reason"]) == ("Normal", "PodCreated")
    assert event["message"] == "created Pod k1 and Service k1"


def test_deleted_pod_is_recreated_with_the_same_identity(
    start_controller: Start, clients: Clients
) -> None:
    start_controller()
    clients.kernels.create(kernel_body("k2"))
    first = eventually(lambda: clients.get(clients.pods, "k2"), timeout=30, message="no pod")

    clients.pods.delete("k2", propagation="Background")

    def recreated() -> dict[str, Any] | None:
        pod = clients.get(clients.pods, "k2")
        return pod if pod and pod["metadata"]["uid"] != first["metadata"]["uid"] else None

    second = eventually(recreated, timeout=30, message="pod not recreated")
    assert second["spec"]["containers"][0]["env"] == first["spec"]["containers"][0]["env"]


def test_service_drift_is_corrected_and_foreign_labels_stay(
    start_controller: Start, clients: Clients
) -> None:
    start_controller()
    clients.kernels.create(kernel_body("k3"))
    eventually(lambda: clients.get(clients.services, "k3"), timeout=30, message="no svc")
    service = clients.services.get("k3")
    ports = service["spec"]["ports"]
    ports[0]["port"] = 7777
    clients.services.patch(
        "k3", {"metadata": {"labels": {"someone": "else"}}, "spec": {"ports": ports}}
    )

    def corrected() -> dict[str, Any] | None:
        svc = clients.services.get("k3")
        return svc if svc["spec"]["ports"][0]["port"] == 52317 else None

    fixed = eventually(corrected, timeout=30, message="service port not corrected")
    assert fixed["metadata"]["labels"]["someone"] == "else"


def test_pod_status_is_mirrored_without_invented_timestamps(
    start_controller: Start, clients: Clients
) -> None:
    start_controller()
    clients.kernels.create(kernel_body("k4"))
    eventually(lambda: clients.get(clients.pods, "k4"), timeout=30, message="no pod")

    clients.set_pod_status(
        "k4",
        {
            "phase": "Pending",
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": "0/3 nodes are available",
                    "lastTransitionTime": NOW,
                }
            ],
        },
    )
    kernel = wait_ready_reason(clients, "k4", "Unschedulable")
    assert "0/3 nodes are available" in ready_condition(kernel)["message"]

    clients.set_pod_status(
        "k4",
        {
            "phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": NOW}],
            "containerStatuses": [
                {
                    "name": "k4",
                    "image": "x",
                    "imageID": "",
                    "ready": False,
                    "restartCount": 0,
                    "state": {
                        "waiting": {"reason": "ImagePullBackOff", "message": "no such image"}
                    },
                }
            ],
        },
    )
    kernel = wait_ready_reason(clients, "k4", "ImagePullError")
    assert "no such image" in ready_condition(kernel)["message"]
    assert kernel["status"]["containerState"] == {
        "waiting": {"reason": "ImagePullBackOff", "message": "no such image"}
    }

    clients.set_pod_status(
        "k4",
        {
            "phase": "Running",
            "podIP": "10.1.2.3",
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": NOW},
                {"type": "Ready", "status": "True", "lastTransitionTime": NOW},
            ],
            "containerStatuses": [
                {
                    "name": "k4",
                    "image": "x",
                    "imageID": "",
                    "ready": True,
                    "restartCount": 0,
                    "state": {"running": {"startedAt": NOW}},
                }
            ],
        },
    )
    kernel = wait_ready_reason(clients, "k4", "KernelReady")
    status = kernel["status"]
    assert ready_condition(kernel)["status"] == "True"
    assert status["readyReplicas"] == 1
    assert status["phase"] == "Running"
    assert status["podIP"] == "10.1.2.3"
    assert status["containerState"] == {"running": {"startedAt": NOW}}
    stamps = {c.get("lastTransitionTime") for c in status["conditions"]} - {None}
    assert stamps == {NOW}
    assert all("lastProbeTime" not in c for c in status["conditions"])


def test_status_overwritten_by_someone_else_is_corrected_at_once(
    start_controller: Start, clients: Clients
) -> None:
    start_controller()
    clients.kernels.create(kernel_body("k4b"))
    eventually(lambda: clients.get(clients.pods, "k4b"), timeout=30, message="no pod")
    clients.set_pod_status("k4b", {"phase": "Pending"})
    ours = ready_condition(wait_ready_reason(clients, "k4b", "PodPending"))
    assert ours is not None

    # Right after the controller's own write: its read-your-writes memory still holds the
    # status it wrote, which must not be mistaken for this foreign one. Status-only updates
    # do not trigger a pass (they are mostly our own); a label change does.
    tampered = {**ours, "reason": "Tampered", "message": "written by someone else"}
    clients.kernels.patch("k4b", {"status": {"conditions": [tampered]}}, subresource="status")
    clients.kernels.patch("k4b", {"metadata": {"labels": {"touched": "yes"}}})

    # Well within the memory's 30 s TTL.
    kernel = wait_ready_reason(clients, "k4b", "PodPending", timeout=10)
    assert ready_condition(kernel) == ours


def test_succeeded_pod_culls_the_kernel_and_gc_removes_children(
    start_controller: Start, clients: Clients
) -> None:
    start_controller()
    clients.kernels.create(kernel_body("k5"))
    eventually(lambda: clients.get(clients.services, "k5"), timeout=30, message="no svc")
    eventually(lambda: clients.get(clients.pods, "k5"), timeout=30, message="no pod")

    clients.set_pod_status("k5", {"phase": "Succeeded"})

    eventually(lambda: clients.get(clients.kernels, "k5") is None, timeout=30, message="not culled")
    eventually(
        lambda: (
            clients.get(clients.pods, "k5") is None and clients.get(clients.services, "k5") is None
        ),
        timeout=90,
        interval=0.5,
        message="children not garbage-collected",
    )
    eventually(
        lambda: "Culled" in {e["reason"] for e in clients.kernel_events("k5")},
        timeout=10,
        message="no Culled event",
    )


def test_failed_pod_marks_kernel_failed_then_deletes_after_ttl(
    start_controller: Start, clients: Clients
) -> None:
    start_controller(ReconcileSettings(failed_kernel_ttl=4.0))
    clients.kernels.create(kernel_body("k6"))
    eventually(lambda: clients.get(clients.pods, "k6"), timeout=30, message="no pod")
    finished = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    clients.set_pod_status(
        "k6",
        {
            "phase": "Failed",
            "containerStatuses": [
                {
                    "name": "k6",
                    "image": "x",
                    "imageID": "",
                    "ready": False,
                    "restartCount": 0,
                    "state": {
                        "terminated": {"exitCode": 3, "reason": "Error", "finishedAt": finished}
                    },
                }
            ],
        },
    )
    kernel = wait_ready_reason(clients, "k6", "KernelFailed")
    assert "exit code 3" in ready_condition(kernel)["message"]
    eventually(
        lambda: (
            [e["reason"] for e in clients.kernel_events("k6") if e["type"] == "Warning"]
            == ["KernelFailed"]
        ),
        timeout=10,
        message="not exactly one KernelFailed warning",
    )
    eventually(
        lambda: clients.get(clients.kernels, "k6") is None,
        timeout=30,
        message="not deleted after TTL",
    )


def test_secret_mode_keeps_the_key_out_of_annotations_status_events_and_logs(
    start_controller: Start, clients: Clients, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    start_controller(ReconcileSettings(key_mode=KeyMode.SECRET))
    clients.kernels.create(kernel_body("k7"))
    pod = eventually(lambda: clients.get(clients.pods, "k7"), timeout=30, message="no pod")
    secret = clients.secrets.get("k7-connection")
    key = base64.b64decode(secret["data"]["key"]).decode()
    assert len(key) == 64
    assert secret["metadata"]["ownerReferences"][0]["name"] == "k7"
    env = {e["name"]: e for e in pod["spec"]["containers"][0]["env"]}
    assert env["KERNEL_KEY"]["valueFrom"] == {
        "secretKeyRef": {"name": "k7-connection", "key": "key"}
    }

    kernel = wait_ready_reason(clients, "k7", "PodPending")
    info = json.loads(kernel["metadata"]["annotations"]["jupyter.org/kernel-connection-info"])
    assert "key" not in info
    assert kernel["status"]["connection"]["keySecret"] == "k7-connection"
    for text in (json.dumps(kernel), json.dumps(clients.kernel_events("k7")), caplog.text):
        assert key not in text


def test_foreign_pod_with_the_kernel_name_is_left_alone(
    start_controller: Start, clients: Clients
) -> None:
    start_controller()
    clients.pods.create(
        {
            "metadata": {"name": "k8", "labels": {"jupyter.org/kernel-name": "k8"}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        }
    )
    clients.kernels.create(kernel_body("k8"))
    clients.kernels.create(kernel_body("k9"))

    kernel = wait_ready_reason(clients, "k8", "PodNameConflict")
    assert "not controlled by this Kernel" in ready_condition(kernel)["message"]
    assert "ownerReferences" not in clients.pods.get("k8")["metadata"]
    eventually(lambda: clients.get(clients.pods, "k9"), timeout=30, message="other kernel starved")


def test_pod_warning_events_are_reissued_on_the_kernel(
    start_controller: Start, clients: Clients
) -> None:
    start_controller()
    clients.kernels.create(kernel_body("k10"))
    pod = eventually(lambda: clients.get(clients.pods, "k10"), timeout=30, message="no pod")
    clients.events.create(
        {
            "metadata": {"name": "k10.pull"},
            "involvedObject": {
                "kind": "Pod",
                "name": "k10",
                "namespace": clients.namespace,
                "uid": pod["metadata"]["uid"],
                "apiVersion": "v1",
            },
            "type": "Warning",
            "reason": "Failed",
            "message": 'Failed to pull image "nope": not found',
            "source": {"component": "kubelet"},
            "firstTimestamp": NOW,
            "lastTimestamp": NOW,
            "count": 1,
        }
    )

    def reissued() -> list[dict[str, Any]]:
        return [
            e
            for e in clients.kernel_events("k10")
            if e["message"].startswith("Reissued from pod/k10: ")
        ]

    (event,) = eventually(reissued, timeout=30, message="warning not reissued")
    assert event["type"] == "Warning"
    assert event["reason"] == "Failed"
    assert event["message"] == 'Reissued from pod/k10: Failed to pull image "nope": not found'


def test_repeated_pod_warnings_become_count_updates_of_one_event(
    start_controller: Start, clients: Clients, requests: CountingObserver
) -> None:
    start_controller()
    clients.kernels.create(kernel_body("k11"))
    pod = eventually(lambda: clients.get(clients.pods, "k11"), timeout=30, message="no pod")
    warning = {
        "metadata": {"name": "k11.backoff"},
        "involvedObject": {
            "kind": "Pod",
            "name": "k11",
            "namespace": clients.namespace,
            "uid": pod["metadata"]["uid"],
            "apiVersion": "v1",
        },
        "type": "Warning",
        "reason": "BackOff",
        "message": 'Back-off pulling image "nope"',
        "source": {"component": "kubelet"},
        "firstTimestamp": NOW,
        "lastTimestamp": NOW,
        "count": 1,
    }
    clients.events.create(warning)
    repeats = 30
    for count in range(2, repeats + 1):  # the kubelet counts repeats on its own Event
        clients.events.patch("k11.backoff", {"count": count})

    def reissued() -> list[dict[str, Any]]:
        return [e for e in clients.kernel_events("k11") if e["type"] == "Warning"]

    # The repeats that came after the first write are merged into one count update, sent
    # once the update interval (10 s) has passed.
    (event,) = eventually(
        lambda: [e for e in reissued() if e.get("count") == repeats],
        timeout=40,
        message=f"the Kernel's Warning never counted {repeats}",
    )
    assert len(reissued()) == 1
    assert event["message"] == 'Reissued from pod/k11: Back-off pulling image "nope"'
    writes = requests.count("create:events") + requests.count("patch:events")
    assert writes <= 1 + 3  # PodCreated, the Warning, and a few count updates: not 30


def wait_quiet(requests: CountingObserver, quiet: float = 2.0) -> None:
    """Poll until the controller has made no request for ``quiet`` seconds."""
    last = requests.snapshot()
    changed = time.monotonic()

    def probe() -> bool:
        nonlocal last, changed
        now = requests.snapshot()
        if now != last:
            last, changed = now, time.monotonic()
            return False
        return time.monotonic() - changed >= quiet

    eventually(probe, timeout=60, message="the controller never went quiet")


class CountingReconciles:
    def __init__(self) -> None:
        self.done = 0

    def reconcile_started(self) -> None:
        pass

    def reconcile_done(self, *, result: str, seconds: float) -> None:
        self.done += 1  # one int += under the GIL from worker threads; read by the test


def test_api_budget_of_a_new_kernel(
    start_controller: Start, clients: Clients, requests: CountingObserver
) -> None:
    start_controller()
    clients.kernels.create(kernel_body("b1"))
    eventually(lambda: clients.get(clients.pods, "b1"), timeout=30, message="no pod")
    wait_ready_reason(clients, "b1", "PodPending")
    clients.set_pod_status(
        "b1",
        {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": NOW}],
        },
    )
    wait_ready_reason(clients, "b1", "KernelReady")

    eventually(lambda: requests.count("create:events") >= 1, timeout=30, message="no events")
    writes = requests.writes()
    status_writes = writes.pop("patch:kernels/status", 0)
    # Pod states observed: created (no status yet), then Running + Ready.
    assert 1 <= status_writes <= 2, requests.failures()
    assert writes == {
        "patch:kernels": 1,  # the identity annotations
        "create:pods": 1,
        "create:services": 1,
        "create:events": 1,  # one PodCreated for the Pod and the Service
    }, f"refused: {requests.failures()}"


def test_events_go_through_their_own_client_when_given_one(
    start_controller: Start, clients: Clients, requests: CountingObserver, api_client: Any
) -> None:
    # The manager gives the recorder a client with its own QPS budget; here both clients
    # count, so the test sees which one carried each write.
    event_requests = CountingObserver()
    start_controller(events_rest=RestClient(api_client, observer=event_requests))
    clients.kernels.create(kernel_body("b2"))
    eventually(lambda: clients.get(clients.services, "b2"), timeout=30, message="no service")

    eventually(lambda: event_requests.count("create:events") == 1, timeout=30, message="no events")
    assert event_requests.writes() == {"create:events": 1}
    assert "create:events" not in requests.writes()
    assert requests.count("create:pods") == 1


def test_resync_of_100_unchanged_kernels_costs_no_request(
    start_controller: Start, clients: Clients, requests: CountingObserver
) -> None:
    reconciles = CountingReconciles()
    start_controller(resync_period=1.0, observer=reconciles)
    for i in range(100):
        clients.kernels.create(kernel_body(f"r{i:03d}"))

    def settled() -> bool:
        kernels = clients.kernels.list(limit=0, continue_token="", resource_version="")["items"]
        return len(kernels) == 100 and all(
            (ready_condition(k) or {}).get("reason") == "PodPending" for k in kernels
        )

    eventually(settled, timeout=90, interval=0.5, message="kernels not settled")
    wait_quiet(requests)
    before = requests.snapshot()
    reconciles_before = reconciles.done

    eventually(
        lambda: reconciles.done >= reconciles_before + 200,
        timeout=30,
        message="resync did not replay the kernels",
    )
    after = requests.snapshot()
    assert {k: v for k, v in after.items() if not k.startswith("watch")} == {
        k: v for k, v in before.items() if not k.startswith("watch")
    }
