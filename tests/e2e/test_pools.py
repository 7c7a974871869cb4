"""Warm pools end to end (SPEC §13), with real kernels on the local node: a KernelPool's idle
standby kernels are claimed by Kernels naming it, activated with each Kernel's own identity and
answer over the connection info the Kernel publishes; the pool refills; with none idle a Kernel
starts cold; scaling the pool down deletes idle Pods only."""

from __future__ import annotations

import queue
from collections.abc import Callable
from typing import Any, cast

from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.connect import KernelConnectionInfo

from controllerprocess import ControllerProcess
from deploytest import kubectl
from eventually import eventually
from kernel_connect import connection_info, run_code
from kerneltest import Clients, kernel_body, pool_body
from kerneltest import ready_kernel as ready

TIMEOUT = 90.0
POOL = "warm"
STANDBY = f"jupyter.org/kernel-pool={POOL},!jupyter.org/kernel-name"


def pool_status(clients: Clients) -> dict[str, Any]:
    return (clients.get(clients.pools, POOL) or {}).get("status") or {}


def standby_pods(clients: Clients) -> list[dict[str, Any]]:
    pods = clients.list_pods(STANDBY)
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


def idle_ready(clients: Clients, n: int) -> bool:
    """Whether the pool has exactly ``n`` standby Pods, all Ready, and its status says so."""
    pods = standby_pods(clients)
    ready_pods = [
        p
        for p in pods
        if any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in p.get("status", {}).get("conditions") or ()
        )
    ]
    status = pool_status(clients)
    return len(pods) == len(ready_pods) == n and status.get("readyReplicas", 0) == n


def reasons(clients: Clients, name: str) -> set[str]:
    return {e["reason"] for e in clients.kernel_events(name)}


def kernel_pods(clients: Clients, name: str) -> list[dict[str, Any]]:
    return clients.list_pods(f"jupyter.org/kernel-name={name}")


def no_reply(info: dict[str, Any], *, seconds: float) -> bool:
    """Whether a kernel_info request signed with ``info``'s key goes unanswered."""
    client = BlockingKernelClient()
    client.load_connection_info(cast(KernelConnectionInfo, info))
    client.start_channels()
    try:
        client.kernel_info()
        client.get_shell_msg(timeout=seconds)
    except queue.Empty:
        return True
    finally:
        client.stop_channels()
    return False


def claimed_counts_since(clients: Clients, resource_version: str, last: int) -> list[int]:
    """The pool's ``status.claimed`` as each write since ``resource_version`` left it, up to
    the first showing ``last`` (a watch from that version replays every write)."""
    counts: list[int] = []
    stream = clients.pools.watch(
        resource_version=resource_version, timeout_seconds=30, read_timeout=35
    )
    try:
        for event in stream:
            if event.type != "MODIFIED" or event.object["metadata"]["name"] != POOL:
                continue
            counts.append(int((event.object.get("status") or {}).get("claimed") or 0))
            if counts[-1] == last:
                break
    finally:
        stream.close()
    return counts


def test_a_pool_serves_claimed_kernels_refills_and_scales_down_idle_pods_only(
    controller: Callable[..., ControllerProcess], clients: Clients, kubeconfig: str
) -> None:
    proc = controller()
    clients.pools.create(pool_body(POOL, 3))
    eventually(lambda: idle_ready(clients, 3), timeout=TIMEOUT, message="pool not 3")
    standby_names = {p["metadata"]["name"] for p in standby_pods(clients)}

    names = ["pooled-1", "pooled-2", "pooled-3"]
    before = (clients.get(clients.pools, POOL) or {})["metadata"]["resourceVersion"]
    for name in names:
        clients.kernels.create(kernel_body(name, poolRef={"name": POOL}))
    kernels = {
        name: eventually(lambda n=name: ready(clients, n), timeout=TIMEOUT, message="not Ready")
        for name in names
    }
    # The pool's status shows the first claim at once and coalesces the next ones: not one
    # write per claim.
    eventually(lambda: pool_status(clients).get("claimed") == 3, timeout=TIMEOUT, message="claimed")
    counts = claimed_counts_since(clients, before, 3)
    shown = [n for i, n in enumerate(counts) if n and (i == 0 or n != counts[i - 1])]
    assert shown[-1] == 3 and len(shown) <= 2, counts  # e.g. [1, 3], never [1, 2, 3]
    claimed: set[str] = set()
    infos = {}
    for name, kernel in kernels.items():
        (pod,) = kernel_pods(clients, name)
        claimed.add(pod["metadata"]["name"])
        owners = pod["metadata"]["ownerReferences"]
        assert [(o["kind"], o["name"], o.get("controller")) for o in owners] == [
            ("Kernel", name, True)
        ]
        # the activation is recorded by the Kernel's status alone: no write of its own
        assert "jupyter.org/activated-for" not in (pod["metadata"].get("annotations") or {})
        assert kernel["status"]["podIP"] == pod["status"]["podIP"]
        assert "Claimed" in reasons(clients, name)
        infos[name] = connection_info(kernel, host="pod", key=None)
        assert run_code(infos[name], "1+1", timeout=30) == "2"
    assert claimed == standby_names  # each Kernel got one of the three, none twice
    assert len({info["key"] for info in infos.values()}) == 3  # each its own key
    # A client holding another kernel's key is ignored.
    assert no_reply({**infos["pooled-1"], "key": infos["pooled-2"]["key"]}, seconds=3)

    eventually(lambda: idle_ready(clients, 3), timeout=TIMEOUT, message="pool not refilled")
    eventually(lambda: pool_status(clients).get("claimed") == 3, timeout=TIMEOUT, message="claimed")
    assert proc.value("kernel_pool_claims_total", result="hit") == 3
    assert proc.value("kernel_startup_seconds_count", source="pool") == 3

    # Scale down, as a user or an autoscaler would: the idle Pods go, the claimed ones stay.
    kubectl(
        "scale",
        f"kernelpool/{POOL}",
        "--replicas=0",
        "-n",
        clients.namespace,
        kubeconfig=kubeconfig,
    )
    eventually(lambda: idle_ready(clients, 0), timeout=TIMEOUT, message="idle Pods not deleted")
    for name in names:
        assert ready(clients, name) is not None
        assert [p["metadata"]["name"] for p in kernel_pods(clients, name)]
    assert run_code(infos["pooled-3"], "2+2", timeout=30) == "4"

    # With no idle kernel, a Kernel naming the pool starts cold (from the pool's template).
    cold = ["cold-4", "cold-5"]
    for name in cold:
        clients.kernels.create(kernel_body(name, poolRef={"name": POOL}))
    for name in cold:
        kernel = eventually(lambda n=name: ready(clients, n), timeout=TIMEOUT, message="not Ready")
        assert "ColdStart" in reasons(clients, name)
        (pod,) = kernel_pods(clients, name)
        assert pod["metadata"]["name"] == name
        assert run_code(connection_info(kernel, host="pod", key=None), "1+1", timeout=30) == "2"
    assert proc.value("kernel_pool_claims_total", result="miss") == 2
    assert proc.value("kernel_startup_seconds_count", source="cold") == 2
