"""The local node (``hack/localnode``) against the real control plane: it binds kernel Pods,
runs the launch script per Pod on its own loopback address, and reports the Pod status as it
is (Running, Ready once the probe's port accepts, Succeeded/Failed with the exit code); it
stops the process of a deleted Pod; ``--no-processes`` only writes status."""

from __future__ import annotations

import base64
import importlib.util
import ipaddress
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from eventually import eventually
from integration.localnode.harness import Cluster, NodeProcess, kernel_pod
from localcluster import free_port

REPO = Path(__file__).resolve().parents[3]
StartNode = Callable[..., NodeProcess]


def status(pod: dict[str, Any] | None) -> dict[str, Any]:
    return (pod or {}).get("status") or {}


def condition(pod: dict[str, Any] | None, kind: str) -> str | None:
    for cond in status(pod).get("conditions") or ():
        if cond["type"] == kind:
            return str(cond["status"])
    return None


def container_state(pod: dict[str, Any] | None) -> dict[str, Any]:
    statuses = status(pod).get("containerStatuses") or [{}]
    return dict(statuses[0].get("state") or {})


def wait_phase(cluster: Cluster, name: str, phase: str, timeout: float = 30) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        pod = cluster.pod(name)
        return pod if status(pod).get("phase") == phase else None

    return eventually(probe, timeout=timeout, message=f"pod {name} not {phase}")


def wait_ready(cluster: Cluster, name: str, timeout: float = 30) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        pod = cluster.pod(name)
        return pod if condition(pod, "Ready") == "True" else None

    return eventually(probe, timeout=timeout, message=f"pod {name} not Ready")


def send_exit(ip: str, port: int) -> None:
    with socket.create_connection((ip, port), timeout=5) as conn:
        conn.sendall(b"exit\n")


def is_loopback_pod_ip(ip: str) -> bool:
    address = ipaddress.IPv4Address(ip)
    return address in ipaddress.IPv4Network("127.0.0.0/8") and ip != "127.0.0.1"


def process_gone(pid: int) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return True
    return fields[0] == "Z"


def test_pod_bound_running_ready_then_succeeded(cluster: Cluster, start_node: StartNode) -> None:
    node = start_node()
    key = "k" * 43
    cluster.secrets.create(
        {
            "metadata": {"name": "k1-connection"},
            "data": {"key": base64.b64encode(key.encode()).decode()},
        }
    )
    port = free_port()
    secret_env = {
        "name": "KERNEL_KEY",
        "valueFrom": {"secretKeyRef": {"name": "k1-connection", "key": "key"}},
    }
    cluster.create_pod("k1", port, gate=True, env=[secret_env])

    running = wait_phase(cluster, "k1", "Running")
    assert running["spec"]["nodeName"] == node.name
    st = status(running)
    ip = st["podIP"]
    assert is_loopback_pod_ip(ip), ip
    assert st["podIPs"] == [{"ip": ip}]
    assert st["hostIP"] == "127.0.0.1"
    assert st["startTime"].endswith("Z")
    container = st["containerStatuses"][0]
    assert container["name"] == "k1"
    assert container["started"] is True
    assert container["restartCount"] == 0
    assert container["image"] == "localnode/fake-kernel:test"
    assert container["state"]["running"]["startedAt"].endswith("Z")
    assert condition(running, "PodScheduled") == "True"

    record = eventually(lambda: cluster.kernel_record("k1"), timeout=10, message="no record")
    assert record["env"]["KERNEL_IP"] == ip  # the node's address, not the Pod's 0.0.0.0
    assert record["env"]["KERNEL_KEY"] == key  # resolved from the Secret
    assert record["env"]["KERNEL_PYTHON"] == sys.executable
    assert record["env"]["KERNEL_SHELL_PORT"] == str(port)
    assert record["env"]["POD_NAME"] == "k1"
    assert record["env"]["KUBECONFIG"] is None  # the node's environment does not leak
    assert Path(record["cwd"]).is_relative_to(node.state_dir)

    # The kernel does not listen yet: not Ready, however often the node probes.
    pod = cluster.pod("k1")
    assert condition(pod, "Ready") == "False"
    assert container_state(pod).get("running")
    assert status(pod)["containerStatuses"][0]["ready"] is False

    (cluster.out / "k1.listen").touch()
    ready = wait_ready(cluster, "k1")
    assert condition(ready, "ContainersReady") == "True"
    assert status(ready)["containerStatuses"][0]["ready"] is True
    assert status(ready)["podIP"] == ip  # stable

    send_exit(ip, port)
    done = wait_phase(cluster, "k1", "Succeeded")
    terminated = container_state(done)["terminated"]
    assert terminated["exitCode"] == 0
    assert terminated["reason"] == "Completed"
    assert terminated["finishedAt"] >= terminated["startedAt"]
    assert condition(done, "Ready") == "False"
    assert status(done)["containerStatuses"][0]["ready"] is False
    log = node.state_dir / "pods" / cluster.namespace / f"k1-{done['metadata']['uid'][:8]}"
    assert "fake kernel listening" in (log / "container.log").read_text()


def test_failed_with_real_exit_code(cluster: Cluster, start_node: StartNode) -> None:
    start_node()
    port = free_port()
    cluster.create_pod("k3", port, exit_code=3, terminationMessagePolicy="FallbackToLogsOnError")
    ready = wait_ready(cluster, "k3")
    send_exit(status(ready)["podIP"], port)

    failed = wait_phase(cluster, "k3", "Failed")
    terminated = container_state(failed)["terminated"]
    assert terminated["exitCode"] == 3
    assert terminated["reason"] == "Error"
    assert "fake kernel exiting with 3" in terminated["message"]
    assert terminated["startedAt"] and terminated["finishedAt"]
    assert condition(failed, "Ready") == "False"


def test_node_registered_with_heartbeat(cluster: Cluster, start_node: StartNode) -> None:
    node = start_node()

    def heartbeat() -> str:
        ready = [
            c for c in cluster.nodes.get(node.name)["status"]["conditions"] if c["type"] == "Ready"
        ]
        return str(ready[0]["lastHeartbeatTime"]) if ready and ready[0]["status"] == "True" else ""

    first = eventually(heartbeat, timeout=10, message="node not Ready")
    eventually(lambda: heartbeat() > first, timeout=10, message="no heartbeat")
    node_obj = cluster.nodes.get(node.name)
    assert node_obj["status"]["allocatable"]["pods"] in ("10000", "10k")  # canonical form
    assert {"type": "InternalIP", "address": "127.0.0.1"} in node_obj["status"]["addresses"]


def test_two_pods_get_their_own_ips_on_the_same_port(
    cluster: Cluster, start_node: StartNode
) -> None:
    start_node()
    port = free_port()
    cluster.create_pod("a", port)
    cluster.create_pod("b", port)
    a, b = wait_ready(cluster, "a"), wait_ready(cluster, "b")
    ip_a, ip_b = status(a)["podIP"], status(b)["podIP"]
    assert ip_a != ip_b
    assert is_loopback_pod_ip(ip_a) and is_loopback_pod_ip(ip_b)


def test_deleting_a_pod_stops_its_process(cluster: Cluster, start_node: StartNode) -> None:
    start_node()
    port = free_port()
    cluster.create_pod("gone", port)
    ready = wait_ready(cluster, "gone")
    pid = cluster.kernel_record("gone")["pid"]  # type: ignore[index]
    assert not process_gone(pid)

    cluster.pods.delete("gone")  # graceful: the node stops the process and finishes it
    eventually(lambda: cluster.pod("gone") is None, timeout=30, message="pod not deleted")
    eventually(lambda: process_gone(pid), timeout=10, message=f"process {pid} still runs")
    with pytest.raises(OSError):
        socket.create_connection((status(ready)["podIP"], port), timeout=1).close()


def test_a_process_ignoring_sigterm_is_killed_after_the_grace_period(
    cluster: Cluster, start_node: StartNode
) -> None:
    start_node()
    stubborn = {"name": "TEST_IGNORE_SIGTERM", "value": "1"}
    body = kernel_pod("stubborn", free_port(), out=cluster.out, env=[stubborn])
    body["spec"]["terminationGracePeriodSeconds"] = 1
    cluster.pods.create(body)
    wait_ready(cluster, "stubborn")
    pid = cluster.kernel_record("stubborn")["pid"]  # type: ignore[index]

    started = time.monotonic()
    cluster.pods.delete("stubborn")
    eventually(lambda: cluster.pod("stubborn") is None, timeout=30, message="pod not deleted")
    assert process_gone(pid)
    assert time.monotonic() - started >= 1.0  # SIGTERM was ignored: SIGKILL after 1 s


def test_daemon_up_reuses_and_down_stops_exactly_its_node(
    kubeconfig: str, cluster: Cluster, tmp_path: Path
) -> None:
    state = tmp_path / "daemon"
    node_name = f"node-{uuid.uuid4().hex[:10]}"
    base = [sys.executable, "-m", "localnode.daemon"]
    env = dict(os.environ, PYTHONPATH=f"{REPO / 'src'}:{REPO / 'hack'}")
    up = [*base, "up", f"--dir={state}", f"--kubeconfig={kubeconfig}", f"--node-name={node_name}"]
    up += [f"--namespace={cluster.namespace}", "--no-processes"]

    def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            argv, check=False, env=env, cwd=REPO, capture_output=True, text=True, timeout=90
        )

    first = run(up)
    try:
        assert first.returncode == 0, first.stderr
        pid = int((state / "node.pid").read_text())
        assert f"local node running (pid {pid})" in first.stdout
        again = run(up)
        assert again.returncode == 0
        assert "reusing the local node already running" in again.stderr
        assert int((state / "node.pid").read_text()) == pid
        assert cluster.nodes.get(node_name)["metadata"]["name"] == node_name
        cluster.create_pod("bg", 8888)
        wait_ready(cluster, "bg")
        assert run([*base, "status", f"--dir={state}"]).returncode == 0
    finally:
        down = run([*base, "down", f"--dir={state}"])
    assert down.returncode == 0
    assert f"local node (pid {pid}) stopped" in down.stdout
    assert process_gone(pid)
    assert not (state / "node.pid").exists()
    assert run([*base, "status", f"--dir={state}"]).returncode == 1
    assert "stopped" in (state / "node.log").read_text()


def test_missing_secret_keeps_the_pod_pending_until_it_exists(
    cluster: Cluster, start_node: StartNode
) -> None:
    start_node()
    ref = {"name": "KERNEL_KEY", "valueFrom": {"secretKeyRef": {"name": "later", "key": "key"}}}
    cluster.create_pod("waits", free_port(), env=[ref])

    def config_error() -> bool:
        waiting = container_state(cluster.pod("waits")).get("waiting") or {}
        return waiting.get("reason") == "CreateContainerConfigError"

    eventually(config_error, timeout=20, message="no CreateContainerConfigError")
    pod = cluster.pod("waits")
    assert status(pod)["phase"] == "Pending"
    assert 'secret "later" not found' in container_state(pod)["waiting"]["message"]
    cluster.secrets.create({"metadata": {"name": "later"}, "data": {"key": "czNjcjN0"}})
    wait_ready(cluster, "waits", timeout=60)
    assert cluster.kernel_record("waits")["env"]["KERNEL_KEY"] == "s3cr3t"  # type: ignore[index]


def test_an_image_from_an_unresolvable_registry_is_never_pulled(
    cluster: Cluster, start_node: StartNode
) -> None:
    start_node()
    cluster.create_pod("unpullable", free_port(), image="registry.invalid/kernel-py:1")

    def backing_off() -> bool:
        waiting = container_state(cluster.pod("unpullable")).get("waiting") or {}
        return waiting.get("reason") == "ImagePullBackOff"

    eventually(backing_off, timeout=20, message="no ImagePullBackOff")
    pod = cluster.pod("unpullable")
    assert status(pod)["phase"] == "Pending"
    assert "lookup registry.invalid: no such host" in container_state(pod)["waiting"]["message"]
    assert cluster.kernel_record("unpullable") is None  # never started


def test_a_pod_that_does_not_fit_the_node_is_marked_unschedulable(
    cluster: Cluster, start_node: StartNode
) -> None:
    start_node()
    body = kernel_pod("elsewhere", free_port(), out=cluster.out)
    body["spec"]["nodeSelector"] = {"accelerator": "tpu"}
    cluster.pods.create(body)

    def unschedulable() -> dict[str, Any] | None:
        for cond in status(cluster.pod("elsewhere")).get("conditions") or ():
            if cond["type"] == "PodScheduled" and cond.get("reason") == "Unschedulable":
                return dict(cond)
        return None

    cond = eventually(unschedulable, timeout=20, message="not marked Unschedulable")
    assert cond["status"] == "False"
    assert "didn't match Pod's node affinity/selector" in cond["message"]
    assert not (cluster.pod("elsewhere") or {}).get("spec", {}).get("nodeName")


def test_node_stop_kills_kernels_and_a_new_node_reports_them_lost(
    cluster: Cluster, start_node: StartNode
) -> None:
    node = start_node()
    cluster.create_pod("orphan", free_port())
    wait_ready(cluster, "orphan")
    pid = cluster.kernel_record("orphan")["pid"]  # type: ignore[index]

    assert node.stop() == 0
    assert process_gone(pid)
    # A node started again under the same name cannot find the container: Failed, 137.
    start_node(f"--node-name={node.name}")
    failed = wait_phase(cluster, "orphan", "Failed")
    terminated = container_state(failed)["terminated"]
    assert terminated["reason"] == "ContainerStatusUnknown"
    assert terminated["exitCode"] == 137


def test_no_processes_mode_makes_50_pods_ready(cluster: Cluster, start_node: StartNode) -> None:
    start_node("--no-processes")
    names = [f"p{n:02d}" for n in range(50)]
    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda name: cluster.create_pod(name, 8888), names))

    def all_ready() -> list[dict[str, Any]] | None:
        items = cluster.pods.list(limit=0, continue_token="", resource_version="")["items"]
        ready = [
            p for p in items
            if status(p).get("phase") == "Running" and condition(p, "Ready") == "True"
        ]  # fmt: skip
        return ready if len(ready) == len(names) else None

    ready = eventually(all_ready, timeout=30, message="not all 50 pods Ready")
    elapsed = time.monotonic() - started
    ips = {status(p)["podIP"] for p in ready}
    assert len(ips) == len(names)
    assert all(is_loopback_pod_ip(ip) for ip in ips)
    assert all(container_state(p).get("running") for p in ready)
    assert elapsed < 30
    print(f"50 pods Running+Ready in {elapsed:.2f} s")  # noqa: T201

    for name in names:
        cluster.pods.delete(name)
    eventually(
        lambda: not cluster.pods.list(limit=0, continue_token="", resource_version="")["items"],
        timeout=30,
        message="pods not deleted",
    )


LAUNCH_SCRIPT = REPO / "kernel_launch" / "bootstrap-kernel.sh"


@pytest.mark.skipif(
    not LAUNCH_SCRIPT.is_file() or importlib.util.find_spec("ipykernel") is None,
    reason="needs kernel_launch/bootstrap-kernel.sh and ipykernel",
)
def test_real_ipython_kernel_ready_then_shut_down(cluster: Cluster, start_node: StartNode) -> None:
    blocking = pytest.importorskip("jupyter_client.blocking")
    start_node(f"--launch-script={LAUNCH_SCRIPT}")
    kernel_id = str(uuid.uuid4())
    ports = {name: free_port() for name in ("SHELL", "IOPUB", "STDIN", "HB", "CONTROL")}
    env = [{"name": "KERNEL_ID", "value": kernel_id}] + [
        {"name": f"KERNEL_{name}_PORT", "value": str(port)} for name, port in ports.items()
    ]
    cluster.create_pod("real", ports["SHELL"], env=env)
    ready = wait_ready(cluster, "real", timeout=60)
    ip = status(ready)["podIP"]

    kc = blocking.BlockingKernelClient()
    kc.load_connection_info(
        {
            "ip": ip, "transport": "tcp", "key": kernel_id, "signature_scheme": "hmac-sha256",
            "shell_port": ports["SHELL"], "iopub_port": ports["IOPUB"],
            "stdin_port": ports["STDIN"], "hb_port": ports["HB"],
            "control_port": ports["CONTROL"],
        }
    )  # fmt: skip
    kc.start_channels()
    try:
        reply = kc.execute("import os; print(os.environ['KERNEL_IP'])", reply=True, timeout=30)
        assert reply["content"]["status"] == "ok"
        kc.shutdown()
    finally:
        kc.stop_channels()
    done = wait_phase(cluster, "real", "Succeeded", timeout=30)
    assert container_state(done)["terminated"]["exitCode"] == 0
