"""Warm pools under faults (SPEC §13), with real kernels on the local node: a claim cut short
by a controller that died, a controller restarted after its pooled kernels turned Ready, two
claims of one idle Pod at once (a leader failover mid-claim), activations that must be
refused, and a pool whose kernels cannot start."""

from __future__ import annotations

import base64
import itertools
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from controllerprocess import ControllerProcess
from eventually import eventually
from informers import ResourceClient, RestClient
from kernel_connect import connection_info, run_code
from kerneltest import Clients, kernel_body, pool_body, ready_kernel
from reconcilers.activation import ActivationRequest, HttpActivator, activation_token
from reconcilers.claim import PoolClaims
from reconcilers.controller import PODS, SECRETS
from reconcilers.model import DEFAULT_ACTIVATION_PORT, DEFAULT_PORTS, SECRET_KEY_FIELD

TIMEOUT = 90.0
POOL = "warm"
STANDBY = f"jupyter.org/kernel-pool={POOL},!jupyter.org/kernel-name"


def live(pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


def is_ready(pod: dict[str, Any]) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in pod.get("status", {}).get("conditions") or ()
    )


def ready_standby(clients: Clients, n: int) -> list[dict[str, Any]] | None:
    pods = [p for p in live(clients.list_pods(STANDBY)) if is_ready(p)]
    return pods if len(pods) == n else None


def kernel_pods(clients: Clients, name: str) -> list[dict[str, Any]]:
    return live(clients.list_pods(f"jupyter.org/kernel-name={name}"))


def controller_owners(pod: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (o["kind"], o["name"]) for o in pod["metadata"]["ownerReferences"] if o.get("controller")
    ]


def claims(rest: RestClient, key: bytes | None = None) -> PoolClaims:
    """The controller's own claim code, run by the test (as a controller about to die)."""
    return PoolClaims(
        pods=ResourceClient(rest, PODS),
        secrets=ResourceClient(rest, SECRETS),
        activator=HttpActivator(timeout=10),
        activation_key=key,
        activation_port=DEFAULT_ACTIVATION_PORT,
    )


def activation_key(rest: RestClient) -> bytes:
    secret = ResourceClient(rest, SECRETS, namespace="default").get("kernel-controller-activation")
    return base64.b64decode(secret["data"]["key"])


def post_activation(pod: dict[str, Any], token: str, body: bytes) -> int:
    ip = pod["status"]["podIP"]
    request = urllib.request.Request(
        f"http://{ip}:{DEFAULT_ACTIVATION_PORT}/activate",
        data=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=30) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


def standby_state(pod: dict[str, Any]) -> str:
    ip = pod["status"]["podIP"]
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"http://{ip}:{DEFAULT_ACTIVATION_PORT}/", timeout=10) as answer:
        return str(json.loads(answer.read())["state"])


def test_a_claim_cut_short_before_activation_is_finished_by_the_next_controller(
    controller: Callable[..., ControllerProcess], clients: Clients
) -> None:
    rest = clients.pods.rest
    first = controller()
    clients.pools.create(pool_body(POOL, 1))
    (idle,) = eventually(lambda: ready_standby(clients, 1), timeout=TIMEOUT, message="no idle")
    assert first.terminate() == 0

    # What a controller did before it died: the Kernel exists and the Pod is relabelled and
    # owned by it (the claim), but the kernel was never activated.
    kernel = clients.kernels.create(kernel_body("cut", poolRef={"name": POOL}))
    claimed = claims(rest).claim(kernel, (idle,))
    assert claimed is not None and claimed["metadata"]["name"] == idle["metadata"]["name"]
    assert "jupyter.org/activated-for" not in (claimed["metadata"].get("annotations") or {})

    controller()  # the next one
    ready = eventually(lambda: ready_kernel(clients, "cut"), timeout=TIMEOUT, message="not Ready")
    (pod,) = kernel_pods(clients, "cut")  # exactly one Pod: the one claimed
    assert pod["metadata"]["uid"] == idle["metadata"]["uid"]
    assert controller_owners(pod) == [("Kernel", "cut")]
    assert run_code(connection_info(ready, host="pod", key=None), "1+1", timeout=30) == "2"
    # No Pod anywhere has two owners, and the pool refilled around the claimed one.
    eventually(lambda: ready_standby(clients, 1), timeout=TIMEOUT, message="pool not refilled")
    for any_pod in clients.list_pods("jupyter.org/kernel-pool"):
        assert len(controller_owners(any_pod)) == 1


def test_a_restarted_controller_leaves_its_activated_pooled_kernels_as_they_are(
    controller: Callable[..., ControllerProcess], clients: Clients
) -> None:
    # Nothing but the Kernel's status records an activation (it costs no write). In secret-key
    # mode, activating a kernel again would replace its key and discard it: a new controller
    # must see from the status that it is active.
    first = controller("--connection-key=secret")
    clients.pools.create(pool_body(POOL, 1))
    eventually(lambda: ready_standby(clients, 1), timeout=TIMEOUT, message="no idle")
    clients.kernels.create(kernel_body("kept", poolRef={"name": POOL}))
    ready = eventually(lambda: ready_kernel(clients, "kept"), timeout=TIMEOUT, message="not Ready")
    (pod,) = kernel_pods(clients, "kept")
    assert "jupyter.org/activated-for" not in (pod["metadata"].get("annotations") or {})
    assert first.terminate() == 0
    secret = clients.secrets.get(ready["status"]["connection"]["keySecret"])
    key = base64.b64decode(secret["data"][SECRET_KEY_FIELD]).decode()
    before = clients.kernels.get("kept")

    second = controller("--connection-key=secret")
    eventually(
        lambda: (second.value("controller_runtime_reconcile_total", controller="kernel",
                              result="success") or 0) >= 1,
        timeout=TIMEOUT,
        message="the new controller did not reconcile the Kernel",
    )  # fmt: skip
    # The kernel answers with the key it had, and nothing of it was written again.
    assert run_code(connection_info(ready, host="pod", key=key), "1+1", timeout=30) == "2"
    (after,) = kernel_pods(clients, "kept")
    assert after["metadata"]["uid"] == pod["metadata"]["uid"]
    assert (
        clients.secrets.get(secret["metadata"]["name"])["metadata"]["resourceVersion"]
        == (secret["metadata"]["resourceVersion"])
    )
    assert (
        clients.kernels.get("kept")["metadata"]["resourceVersion"]
        == (before["metadata"]["resourceVersion"])
    )
    assert "activated pod" not in second.output()


@pytest.mark.parametrize("same_kernel", [True, False], ids=["failover", "two-kernels"])
def test_of_two_claims_racing_for_one_idle_pod_one_wins(
    controller: Callable[..., ControllerProcess],
    clients: Clients,
    same_kernel: bool,
) -> None:
    rest = clients.pods.rest
    proc = controller()
    clients.pools.create(pool_body(POOL, 1))
    (idle,) = eventually(lambda: ready_standby(clients, 1), timeout=TIMEOUT, message="no idle")
    assert proc.terminate() == 0
    one = clients.kernels.create(kernel_body("one", poolRef={"name": POOL}))
    two = one if same_kernel else clients.kernels.create(kernel_body("two", poolRef={"name": POOL}))

    # Two controllers (the old leader and the new one, or two workers) claim the same Pod, both
    # from the same cached version of it, at the same moment.
    start = threading.Barrier(2)
    results: list[dict[str, Any] | None] = [None, None]

    def claim(index: int, kernel: dict[str, Any]) -> None:
        start.wait()
        results[index] = claims(rest).claim(kernel, (idle,))

    threads = [threading.Thread(target=claim, args=(i, k)) for i, k in enumerate((one, two))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    won = [r for r in results if r is not None]
    pod = clients.pods.get(idle["metadata"]["name"])
    assert len(controller_owners(pod)) == 1
    if same_kernel:
        assert len(won) == 2  # the loser finds the Pod claimed for its own Kernel: no 2nd Pod
        assert {r["metadata"]["uid"] for r in won} == {idle["metadata"]["uid"]}
    else:
        assert len(won) == 1
        winner = won[0]["metadata"]["labels"]["jupyter.org/kernel-name"]
        assert controller_owners(pod) == [("Kernel", winner)]

    controller()
    names = ["one"] if same_kernel else ["one", "two"]
    for name in names:
        eventually(lambda n=name: ready_kernel(clients, n), timeout=TIMEOUT, message="not Ready")
        (mine,) = kernel_pods(clients, name)
        assert controller_owners(mine) == [("Kernel", name)]


def test_activations_with_a_wrong_token_or_for_a_second_kernel_are_refused(
    controller: Callable[..., ControllerProcess], clients: Clients
) -> None:
    rest = clients.pods.rest
    controller()
    clients.pools.create(pool_body(POOL, 1))
    (idle,) = eventually(lambda: ready_standby(clients, 1), timeout=TIMEOUT, message="no idle")
    impostor = ActivationRequest(kernel_id="impostor", key="k" * 64, ports=DEFAULT_PORTS)

    assert post_activation(idle, "not-the-token", impostor.body()) == 401
    assert standby_state(idle) == "standby"  # nothing changed

    clients.kernels.create(kernel_body("real", poolRef={"name": POOL}))
    kernel = eventually(lambda: ready_kernel(clients, "real"), timeout=TIMEOUT, message="not Ready")
    (pod,) = kernel_pods(clients, "real")
    assert pod["metadata"]["uid"] == idle["metadata"]["uid"]
    # Even with the right token, a second identity is refused once one was accepted.
    namespace = clients.namespace
    token = activation_token(
        activation_key(rest), namespace=namespace, pod_name=pod["metadata"]["name"]
    )
    assert post_activation(pod, token, impostor.body()) == 409
    assert standby_state(pod) == "active"
    assert run_code(connection_info(kernel, host="pod", key=None), "1+1", timeout=30) == "2"


def test_a_pool_whose_kernels_cannot_start_backs_off(
    controller: Callable[..., ControllerProcess], clients: Clients
) -> None:
    proc = controller()
    broken = {"env": [{"name": "KERNEL_CLASS_NAME", "value": "no_such_module.Kernel"}]}
    clients.pools.create(pool_body(POOL, 1, container=broken))

    seen: dict[str, float] = {}
    started = time.monotonic()
    deadline = started + 20.0
    while time.monotonic() < deadline:  # polling for a bounded time, recording each new Pod
        for pod in clients.list_pods(f"jupyter.org/kernel-pool={POOL}"):
            seen.setdefault(pod["metadata"]["name"], time.monotonic() - started)
        time.sleep(0.1)
    times = sorted(seen.values())
    gaps = [b - a for a, b in itertools.pairwise(times)]
    print(f"standby Pods created at {[round(t, 1) for t in times]} s")  # noqa: T201
    # 1 s, 2 s, 4 s, 8 s after each failure (each kernel also takes a moment to fail): at most
    # six in 20 s, never two within less than the backoff so far.
    assert 2 <= len(times) <= 6
    for n, gap in enumerate(gaps):
        assert gap >= 0.9 * 2**n, f"Pod {n + 2} came {gap:.1f} s after the one before"
    status = clients.pools.get(POOL)["status"]
    ready = status["conditions"][0]
    assert (ready["status"], ready["reason"]) == ("False", "StandbyFailing")
    events = clients.kernel_events(POOL, kind="KernelPool")
    failed = [e for e in events if e["reason"] == "StandbyFailed"]
    assert failed and "exited before it was claimed" in failed[0]["message"]
    assert failed[0]["type"] == "Warning"
    assert not [line for line in proc.log_lines() if line["level"] == "error"]
