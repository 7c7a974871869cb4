"""Least privilege, on the real API server: ``kernel-controller`` runs with nothing but a
TokenRequest token of the ServiceAccount of ``config/rbac`` and the args of
``config/manager``'s Deployment, and the core flow works (Kernel → Pod, Service, status,
Events, Lease; culling; secret-key mode). Then, rule by rule, the ClusterRole or Role without
one verb breaks exactly the step that needs it.

Each test installs its own copy of the RBAC (names prefixed with its namespace). The
controller is cluster-wide, as the ClusterRole is meant for."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from controllerprocess import ControllerProcess
from deploytest import deployment_args, without_rule
from eventually import eventually
from kerneltest import Clients, kernel_body, pool_body

LEASE = "kernel-controller"
TIMEOUT = 30.0
STANDBY = "jupyter.org/kernel-pool=warm,!jupyter.org/kernel-name"
NOW = "2026-01-01T00:00:00Z"
ABSENT_FOR = 3.0  # how long something that must not happen is watched for, once the
# evidence that the controller got past that point (its log line) is there


def ready(clients: Clients, name: str) -> dict[str, Any] | None:
    kernel = clients.get(clients.kernels, name) or {}
    conditions = (kernel.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c.get("type") == "Ready"), None)


def reason(clients: Clients, name: str) -> str | None:
    return (ready(clients, name) or {}).get("reason")


def denied(proc: ControllerProcess, verb: str, resource: str) -> bool:
    """Whether the controller logged the API server's RBAC refusal of ``verb resource``."""
    needle = f'cannot {verb} resource "{resource}"'
    return any(needle in " ".join(map(str, line.values())) for line in proc.log_lines())


def any_denial(proc: ControllerProcess) -> list[str]:
    return [
        str(line.get("msg"))
        for line in proc.log_lines()
        if "cannot " in str(line) and " resource " in str(line) and "forbidden" in str(line)
    ]


def stays(probe: Callable[[], bool], *, seconds: float, message: str) -> None:
    """Poll ``probe`` for ``seconds``; fail as soon as it is false."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert probe(), message
        time.sleep(0.2)  # polling for a bounded time that something does not happen


def leading(proc: ControllerProcess) -> bool:
    return proc.value("leader_election_master_status", name=LEASE) == 1.0


# ----------------------------------------------------------------------- the flow
def test_the_core_flow_works_as_the_service_account(
    install_rbac: Callable[..., str],
    spawn: Callable[..., ControllerProcess],
    clients: Clients,
    namespace: str,
) -> None:
    kubeconfig = install_rbac(namespace)
    proc = spawn(kubeconfig, *deployment_args(namespace))
    proc.wait_ready()
    eventually(lambda: leading(proc), timeout=TIMEOUT, message="never led")

    clients.kernels.create(kernel_body("flow"))
    eventually(lambda: clients.get(clients.pods, "flow"), timeout=TIMEOUT, message="no Pod")
    eventually(lambda: clients.get(clients.services, "flow"), timeout=TIMEOUT, message="no Svc")
    eventually(
        lambda: reason(clients, "flow") == "PodPending", timeout=TIMEOUT, message="no status"
    )
    events = eventually(lambda: clients.kernel_events("flow"), timeout=TIMEOUT, message="no Event")
    assert {e["reason"] for e in events} >= {"PodCreated"}

    clients.set_pod_status("flow", {"phase": "Succeeded"})  # as the kubelet would
    eventually(
        lambda: clients.get(clients.kernels, "flow") is None, timeout=TIMEOUT, message="not culled"
    )
    assert not any_denial(proc)
    assert proc.terminate() == 0  # steps down and releases the Lease (patch)


def test_secret_key_mode_works_as_the_service_account(
    install_rbac: Callable[..., str],
    spawn: Callable[..., ControllerProcess],
    clients: Clients,
    namespace: str,
) -> None:
    kubeconfig = install_rbac(namespace)
    proc = spawn(kubeconfig, *deployment_args(namespace), "--connection-key=secret")
    proc.wait_ready()
    clients.kernels.create(kernel_body("keyed"))
    secret = eventually(
        lambda: clients.get(clients.secrets, "keyed-connection"),
        timeout=TIMEOUT,
        message="no Secret",
    )
    assert secret["metadata"]["ownerReferences"][0]["kind"] == "Kernel"
    pod = eventually(lambda: clients.get(clients.pods, "keyed"), timeout=TIMEOUT, message="no Pod")
    env = {e["name"]: e for e in pod["spec"]["containers"][0]["env"]}
    assert env["KERNEL_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "keyed-connection"
    eventually(
        lambda: (
            (clients.get(clients.kernels, "keyed") or {})
            .get("status", {})
            .get("connection", {})
            .get("keySecret")
            == "keyed-connection"
        ),
        timeout=TIMEOUT,
        message="no status.connection.keySecret",
    )
    assert not any_denial(proc)


def _running(ip: str) -> dict[str, Any]:
    return {
        "phase": "Running",
        "podIP": ip,
        "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": NOW}],
    }


def test_a_pool_works_as_the_service_account(
    install_rbac: Callable[..., str],
    spawn: Callable[..., ControllerProcess],
    clients: Clients,
    namespace: str,
) -> None:
    """Standby Pods and their token Secrets, the activation key, the pool's status, a claim
    (relabel and ownerReference move) and a scale-down, all under the ServiceAccount's RBAC
    (no kernel process here: the activation itself is the end-to-end tests' business)."""
    kubeconfig = install_rbac(namespace)
    proc = spawn(kubeconfig, *deployment_args(namespace))
    proc.wait_ready()
    clients.pools.create(pool_body("warm", 2))

    def two_standby() -> list[dict[str, Any]] | None:
        pods = clients.list_pods(STANDBY)
        return pods if len(pods) == 2 else None

    pods = eventually(two_standby, timeout=TIMEOUT, message="no standby Pods")
    for pod in pods:
        name = pod["metadata"]["name"]
        token = eventually(
            lambda n=name: clients.get(clients.secrets, f"{n}-activation"),
            timeout=TIMEOUT,
            message="no token Secret",
        )
        assert token["metadata"]["ownerReferences"][0]["name"] == name
        clients.set_pod_status(name, _running("127.0.0.1"))  # as the kubelet would
    assert clients.get(clients.secrets, "kernel-controller-activation") is not None
    eventually(
        lambda: (
            (clients.get(clients.pools, "warm") or {}).get("status", {}).get("readyReplicas") == 2
        ),
        timeout=TIMEOUT,
        message="pool status not written",
    )

    clients.kernels.create(kernel_body("pooled", poolRef={"name": "warm"}))
    claimed = eventually(
        lambda: clients.list_pods("jupyter.org/kernel-name=pooled"),
        timeout=TIMEOUT,
        message="not claimed",
    )
    assert claimed[0]["metadata"]["ownerReferences"][0]["kind"] == "Kernel"
    clients.pools.patch("warm", {"spec": {"replicas": 0}})
    eventually(
        lambda: not [p for p in clients.list_pods(STANDBY) if not p["metadata"].get(
            "deletionTimestamp")],
        timeout=TIMEOUT,
        message="idle Pod not deleted",
    )  # fmt: skip
    assert clients.list_pods("jupyter.org/kernel-name=pooled")  # the claimed one stays
    assert not any_denial(proc)


# --------------------------------------------------------- each rule is needed
@dataclass(frozen=True)
class Case:
    resource: str
    verb: str
    args: tuple[str, ...]
    check: Callable[[ControllerProcess, Clients], None]


def _no_pod_creation(denied_resource: str) -> Callable[[ControllerProcess, Clients], None]:
    def check(proc: ControllerProcess, clients: Clients) -> None:
        clients.kernels.create(kernel_body("k"))
        eventually(
            lambda: denied(proc, "create", denied_resource), timeout=TIMEOUT, message="no 403"
        )
        condition = eventually(
            lambda: reason(clients, "k") == "PodCreationFailed" and ready(clients, "k"),
            timeout=TIMEOUT,
            message="no PodCreationFailed",
        )
        assert f'cannot create resource "{denied_resource}"' in condition["message"]
        assert clients.get(clients.pods, "k") is None

    return check


def _status_never_written(proc: ControllerProcess, clients: Clients) -> None:
    clients.kernels.create(kernel_body("k"))
    eventually(lambda: clients.get(clients.pods, "k"), timeout=TIMEOUT, message="no Pod")
    eventually(lambda: clients.get(clients.services, "k"), timeout=TIMEOUT, message="no Svc")
    eventually(lambda: denied(proc, "patch", "kernels/status"), timeout=TIMEOUT, message="no 403")
    assert "status" not in (clients.get(clients.kernels, "k") or {})


def _events_missing_flow_goes_on(proc: ControllerProcess, clients: Clients) -> None:
    clients.kernels.create(kernel_body("k"))
    eventually(lambda: clients.get(clients.pods, "k"), timeout=TIMEOUT, message="no Pod")
    eventually(lambda: clients.get(clients.services, "k"), timeout=TIMEOUT, message="no Svc")
    eventually(lambda: reason(clients, "k") == "PodPending", timeout=TIMEOUT, message="no status")
    eventually(lambda: denied(proc, "create", "events"), timeout=TIMEOUT, message="no 403")
    assert clients.kernel_events("k") == []


def _repeats_not_counted(proc: ControllerProcess, clients: Clients) -> None:
    clients.kernels.create(kernel_body("k"))
    pod = eventually(lambda: clients.get(clients.pods, "k"), timeout=TIMEOUT, message="no Pod")
    involved = {"kind": "Pod", "name": "k", "uid": pod["metadata"]["uid"], "apiVersion": "v1"}
    clients.events.create(
        {
            "metadata": {"name": "k.backoff"},
            "involvedObject": {**involved, "namespace": clients.namespace},
            "type": "Warning",
            "reason": "BackOff",
            "message": "Back-off pulling image",
            "count": 1,
        }
    )
    eventually(
        lambda: [e for e in clients.kernel_events("k") if e["reason"] == "BackOff"],
        timeout=TIMEOUT,
        message="Warning not reissued",
    )
    clients.events.patch("k.backoff", {"count": 2})  # a repeat: counted on the Kernel's Event
    eventually(lambda: denied(proc, "patch", "events"), timeout=TIMEOUT, message="no 403")
    assert reason(clients, "k") == "PodPending"  # the flow went on


def _never_culled(proc: ControllerProcess, clients: Clients) -> None:
    clients.kernels.create(kernel_body("k"))
    eventually(lambda: clients.get(clients.pods, "k"), timeout=TIMEOUT, message="no Pod")
    clients.set_pod_status("k", {"phase": "Succeeded"})
    eventually(lambda: denied(proc, "delete", "kernels"), timeout=TIMEOUT, message="no 403")
    assert clients.get(clients.kernels, "k") is not None


def _never_leads(proc: ControllerProcess, clients: Clients) -> None:
    clients.kernels.create(kernel_body("k"))
    eventually(lambda: denied(proc, "get", "leases"), timeout=TIMEOUT, message="no 403")
    stays(
        lambda: not leading(proc) and clients.get(clients.pods, "k") is None,
        seconds=ABSENT_FOR,
        message="reconciled without the Lease",
    )


def _pools_without_key(proc: ControllerProcess, clients: Clients) -> None:
    clients.pools.create(pool_body("warm", 1))
    eventually(lambda: denied(proc, "get", "secrets"), timeout=TIMEOUT, message="no 403")
    eventually(
        lambda: [
            c
            for c in (clients.get(clients.pools, "warm") or {}).get("status", {}).get(
                "conditions") or ()
            if c["reason"] == "ActivationKeyMissing"
        ],
        timeout=TIMEOUT,
        message="no ActivationKeyMissing",
    )  # fmt: skip
    assert clients.list_pods(STANDBY) == []  # a standby Pod could never be activated


def _never_synced(resource: str) -> Callable[[ControllerProcess, Clients], None]:
    def check(proc: ControllerProcess, clients: Clients) -> None:
        eventually(lambda: denied(proc, "list", resource), timeout=TIMEOUT, message="no 403")
        assert proc.get("/readyz")[0] != 200
        stays(lambda: proc.get("/readyz")[0] != 200, seconds=ABSENT_FOR, message="ready anyway")

    return check


CASES = [
    Case("pods", "create", (), _no_pod_creation("pods")),
    Case("secrets", "create", ("--connection-key=secret",), _no_pod_creation("secrets")),
    Case("kernels/status", "patch", (), _status_never_written),
    Case("events", "create", (), _events_missing_flow_goes_on),
    Case("events", "patch", (), _repeats_not_counted),
    Case("kernels", "delete", (), _never_culled),
    Case("leases", "get", (), _never_leads),
    Case("services", "list", (), _never_synced("services")),
    Case("namespaces", "list", (), _never_synced("namespaces")),
    Case("kernelpools", "list", (), _never_synced("kernelpools")),
    Case("secrets", "get", (), _pools_without_key),
]


@pytest.mark.parametrize("case", CASES, ids=[f"without {c.resource} {c.verb}" for c in CASES])
def test_each_rule_is_needed(
    case: Case,
    install_rbac: Callable[..., str],
    spawn: Callable[..., ControllerProcess],
    clients: Clients,
    namespace: str,
) -> None:
    kubeconfig = install_rbac(
        namespace, mutate=lambda docs: without_rule(docs, resource=case.resource, verb=case.verb)
    )
    proc = spawn(kubeconfig, *deployment_args(namespace), *case.args)
    if case.verb != "list":
        proc.wait_ready()
    case.check(proc, clients)
