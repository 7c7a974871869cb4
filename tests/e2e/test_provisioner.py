"""The Jupyter provisioner end to end (SPEC §12): ``jupyter_client``, nbclient and papermill
start kernels from a kernelspec installed with ``jupyter kernel-controller
install-kernelspec``; each kernel is a Kernel resource that the controller process runs on the
local node as a real IPython kernel."""

from __future__ import annotations

import asyncio
import gc
import os
import queue
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import pytest
from jupyter_client import AsyncMultiKernelManager, KernelManager
from nbclient import NotebookClient

from controllerprocess import ControllerProcess
from e2e.provisioning import (
    KERNELSPEC,
    container_env,
    execute,
    install_kernelspec,
    jupyter_env,
    provisioned,
)
from eventually import eventually
from kernel_provisioner.cluster import Clusters
from kernel_provisioner.provisioner import KernelControllerProvisioner, LaunchError
from kerneltest import Clients, pool_body

PAPERMILL = Path(sys.executable).with_name("papermill")
FAILS_WITHIN = 20.0  # a launch that cannot succeed fails within this (its timeout is 90 s)


@pytest.fixture
def jupyter(
    kubeconfig: str,
    namespace: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    controller: Callable[..., ControllerProcess],
) -> Iterator[Callable[..., Path]]:
    """``jupyter(*install_options, name=...)`` installs a kernelspec for the test's namespace
    (the controller and the local node run there) and points Jupyter at it. The provisioner's
    shared watches are closed afterwards."""
    controller()
    for name, value in jupyter_env(tmp_path / "jupyter", tmp_path).items():
        monkeypatch.setenv(name, value)
    for name in [n for n in os.environ if n.startswith("KERNEL_")]:
        monkeypatch.delenv(name)

    def install(*options: str, name: str = KERNELSPEC) -> Path:
        path = install_kernelspec(
            tmp_path / "prefix", *options, namespace=namespace, kubeconfig=kubeconfig, name=name
        )
        monkeypatch.setenv("JUPYTER_PATH", str(path))
        return path

    yield install
    Clusters.shared().close()
    gc.collect()  # a ZeroMQ context or socket left open is reported on this test


def wait_busy(kc: Any, msg_id: str) -> None:
    """Read IOPub until the kernel says it is busy with ``msg_id``."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        msg = kc.get_iopub_msg(timeout=30)
        if (
            msg["msg_type"] == "status"
            and msg["content"]["execution_state"] == "busy"
            and msg["parent_header"].get("msg_id") == msg_id
        ):
            return
    raise AssertionError("the kernel never started the execution")


def started(name: str = KERNELSPEC, **kwargs: Any) -> KernelManager:
    km = KernelManager(kernel_name=name)
    km.start_kernel(**kwargs)
    return km


def test_kernel_manager_runs_code_in_a_kernel_resource_and_shuts_it_down(
    jupyter: Callable[..., Path], clients: Clients
) -> None:
    jupyter()
    km = started()
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        assert execute(kc, "1+1") == ("ok", "2")
        (kernel,) = provisioned(clients)
        name = kernel["metadata"]["name"]
        assert name.endswith(km.kernel_id)
        assert container_env(kernel)["KERNEL_ID"] == km.kernel_id
        assert km.get_connection_info()["ip"] == kernel["status"]["podIP"]
        assert km.is_alive()
    finally:
        kc.stop_channels()
        km.shutdown_kernel()

    assert provisioned(clients) == []  # shutdown waits until the Kernel is gone
    eventually(
        lambda: (
            clients.get(clients.pods, name) is None and clients.get(clients.services, name) is None
        ),
        timeout=60,
        interval=0.5,
        message="Pod and Service not garbage-collected",
    )


def test_interrupt_stops_a_long_sleep_within_seconds(
    jupyter: Callable[..., Path], clients: Clients, local_node: Path
) -> None:
    jupyter()
    km = started()
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        msg_id = kc.execute("import time; time.sleep(600)")
        wait_busy(kc, msg_id)
        interrupted = time.monotonic()
        km.interrupt_kernel()
        try:
            reply = kc.get_shell_msg(timeout=30)
        except queue.Empty:
            logs = [p.read_text()[-3000:] for p in local_node.glob("pods/*/*/container.log")]
            raise AssertionError(
                f"no reply 30 s after the interrupt; kernel logs: {logs}"
            ) from None
        took = time.monotonic() - interrupted
        assert reply["parent_header"]["msg_id"] == msg_id
        assert (reply["content"]["status"], reply["content"]["ename"]) == (
            "error",
            "KeyboardInterrupt",
        )
        assert took < 5.0
        assert execute(kc, "'still here'") == ("ok", "'still here'")
    finally:
        kc.stop_channels()
        km.shutdown_kernel()


def test_restart_keeps_the_kernel_resource_and_its_connection_info_with_empty_state(
    jupyter: Callable[..., Path], clients: Clients
) -> None:
    jupyter()
    km = started()
    try:
        kc = km.client()
        kc.start_channels()
        kc.wait_for_ready(timeout=60)
        assert execute(kc, "x = 41; x + 1") == ("ok", "42")
        kc.stop_channels()
        (before,) = provisioned(clients)
        pod_before = clients.get(clients.pods, before["metadata"]["name"])
        info_before = km.get_connection_info()

        km.restart_kernel()

        (after,) = provisioned(clients)
        assert after["metadata"]["uid"] == before["metadata"]["uid"]  # the same Kernel
        pod_after = clients.get(clients.pods, after["metadata"]["name"])
        assert pod_after is not None and pod_before is not None
        assert pod_after["metadata"]["uid"] != pod_before["metadata"]["uid"]  # a new Pod
        info_after = km.get_connection_info()
        same = ("key", "transport", "signature_scheme", "shell_port", "iopub_port", "stdin_port")
        assert {k: info_after[k] for k in same} == {k: info_before[k] for k in same}
        assert (info_after["control_port"], info_after["hb_port"]) == (
            info_before["control_port"],
            info_before["hb_port"],
        )
        # The host: the Service's name in `service` mode; with `pod-ip` the new Pod's IP.
        assert info_after["ip"] == pod_after["status"]["podIP"]
        kc = km.client()
        kc.start_channels()
        kc.wait_for_ready(timeout=60)
        assert execute(kc, "'x' in dir()") == ("ok", "False")  # empty state
        kc.stop_channels()
    finally:
        km.shutdown_kernel()
    assert provisioned(clients) == []


def test_a_pooled_kernelspec_claims_a_warm_kernel_and_restarts_it_cold(
    jupyter: Callable[..., Path], clients: Clients
) -> None:
    clients.pools.create(pool_body("warm", 1))
    eventually(
        lambda: (clients.get(clients.pools, "warm") or {}).get("status", {}).get("readyReplicas"),
        timeout=90,
        message="no idle kernel in the pool",
    )
    jupyter("--pool=warm")
    km = started()
    try:
        kc = km.client()
        kc.start_channels()
        kc.wait_for_ready(timeout=60)
        assert execute(kc, "x = 41; x + 1") == ("ok", "42")
        kc.stop_channels()
        (kernel,) = provisioned(clients)
        name = kernel["metadata"]["name"]
        assert kernel["status"]["kernelID"] == km.kernel_id  # Jupyter's id, from the annotation
        assert "Claimed" in {e["reason"] for e in clients.kernel_events(name)}
        (pod,) = clients.list_pods(f"jupyter.org/kernel-name={name}")
        assert pod["metadata"]["labels"]["jupyter.org/kernel-pool"] == "warm"
        assert pod["metadata"]["name"] != name

        km.restart_kernel()  # the claimed Pod is deleted; the Kernel's new Pod starts cold

        (restarted,) = [
            p
            for p in clients.list_pods(f"jupyter.org/kernel-name={name}")
            if not p["metadata"].get("deletionTimestamp")  # the claimed one may still be going
        ]
        assert restarted["metadata"]["name"] == name
        assert km.get_connection_info()["ip"] == restarted["status"]["podIP"]
        kc = km.client()
        kc.start_channels()
        kc.wait_for_ready(timeout=60)
        assert execute(kc, "'x' in dir()") == ("ok", "False")
        kc.stop_channels()
    finally:
        km.shutdown_kernel()
    assert provisioned(clients) == []


def test_nbclient_executes_a_notebook(jupyter: Callable[..., Path], clients: Clients) -> None:
    jupyter()
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("numbers = list(range(1, 11))"),
        nbformat.v4.new_code_cell("total = sum(numbers)"),
        nbformat.v4.new_code_cell("import os\nprint(os.environ['KERNEL_USERNAME'], total)"),
        nbformat.v4.new_code_cell("total * 2"),
    ]

    NotebookClient(nb, kernel_name=KERNELSPEC, timeout=60, startup_timeout=90).execute()

    username = nb.cells[2].outputs[0]["text"].split()[0]
    assert nb.cells[2].outputs[0]["text"] == f"{username} 55\n"
    assert nb.cells[3].outputs[0]["data"]["text/plain"] == "110"
    assert provisioned(clients) == []  # nbclient shut its kernel down


def test_papermill_runs_a_parameterised_notebook(
    jupyter: Callable[..., Path], clients: Clients, tmp_path: Path
) -> None:
    jupyter_path = jupyter()
    nb = nbformat.v4.new_notebook()
    parameters = nbformat.v4.new_code_cell("n = 1")
    parameters.metadata["tags"] = ["parameters"]
    squares = nbformat.v4.new_code_cell("print('squares', sum(i * i for i in range(n)))")
    nb.cells = [parameters, squares]
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Py"}
    source, output = tmp_path / "in.ipynb", tmp_path / "out.ipynb"
    nbformat.write(nb, source)

    done = subprocess.run(
        [str(PAPERMILL), "-k", KERNELSPEC, str(source), str(output), "-p", "n", "4"],
        env=jupyter_env(jupyter_path, tmp_path / "papermill"),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )

    assert done.returncode == 0, done.stderr[-3000:]
    result = nbformat.read(output, as_version=4)
    assert result.cells[-1].outputs[0]["text"] == "squares 14\n"
    assert provisioned(clients) == []


@dataclass(frozen=True)
class Doomed:
    install: tuple[str, ...]  # options of install-kernelspec
    launch_env: dict[str, str]  # the launch environment's additions
    reason: str
    detail: str


DOOMED = {
    "image-cannot-be-pulled": Doomed(
        ("--image=registry.invalid/kernel-py:1",),
        {},
        "ImagePullError",
        "lookup registry.invalid: no such host",
    ),
    "crash-on-start": Doomed((), {"KERNEL_LANGUAGE": "cobol"}, "KernelFailed", "exit code 1"),
    "bad-working-dir": Doomed(
        (), {"KERNEL_WORKING_DIR": "/nonexistent/dir"}, "KernelFailed", "exit code 1"
    ),
}


@pytest.mark.parametrize("case", DOOMED.values(), ids=DOOMED.keys())
def test_a_kernel_that_cannot_start_fails_fast_with_the_reason_and_leaves_nothing(
    jupyter: Callable[..., Path], clients: Clients, case: Doomed
) -> None:
    jupyter(*case.install)
    km = KernelManager(kernel_name=KERNELSPEC)
    began = time.monotonic()
    with pytest.raises(LaunchError) as failed:
        km.start_kernel(env={**os.environ, **case.launch_env})
    took = time.monotonic() - began

    assert failed.value.reason == case.reason
    assert case.reason in str(failed.value) and case.detail in str(failed.value)
    assert took < FAILS_WITHIN
    assert provisioned(clients) == []


def test_an_unschedulable_kernel_fails_fast(
    jupyter: Callable[..., Path], clients: Clients, tmp_path: Path
) -> None:
    template = tmp_path / "template.json"
    template.write_text('{"spec": {"nodeSelector": {"accelerator": "tpu-v9"}}}')
    jupyter(f"--template={template}")
    began = time.monotonic()
    with pytest.raises(LaunchError) as failed:
        started()

    assert failed.value.reason == "Unschedulable"
    assert "didn't match Pod's node affinity/selector" in str(failed.value)
    assert time.monotonic() - began < FAILS_WITHIN
    assert provisioned(clients) == []


def test_the_launch_timeout_is_honoured(
    jupyter: Callable[..., Path], clients: Clients, tmp_path: Path
) -> None:
    # A readiness probe on a port the kernel never opens: not Ready, and nothing says it
    # never will be: only the timeout ends the wait.
    template = tmp_path / "template.json"
    template.write_text(
        '{"spec": {"containers": [{"name": "k", "readinessProbe": {"tcpSocket": {"port": 9},'
        ' "periodSeconds": 1}}]}}'
    )
    jupyter(f"--template={template}", "--launch-timeout=4")
    began = time.monotonic()
    with pytest.raises(LaunchError) as failed:
        started()
    took = time.monotonic() - began

    assert failed.value.reason == "LaunchTimeout"
    assert "not Ready after 4 s" in str(failed.value)
    assert 4.0 <= took < 4.0 + FAILS_WITHIN
    assert provisioned(clients) == []


def test_twenty_kernels_of_one_multi_kernel_manager_share_one_watch(
    jupyter: Callable[..., Path], clients: Clients
) -> None:
    jupyter()

    async def scenario() -> list[str]:
        mkm = AsyncMultiKernelManager()
        ids = await asyncio.gather(*(mkm.start_kernel(kernel_name=KERNELSPEC) for _ in range(20)))
        try:
            results = []
            for kernel_id in ids:
                kc = mkm.get_kernel(kernel_id).client()
                kc.start_channels()
                await kc.wait_for_ready(timeout=120)
                reply = await kc.execute_interactive(f"{len(results)} * 2", timeout=60)
                results.append(str(reply["content"]["status"]))
                kc.stop_channels()
            return results
        finally:
            await mkm.shutdown_all()

    results = asyncio.run(scenario())

    assert results == ["ok"] * 20
    (watch,) = Clusters.shared().namespace_watches()  # one namespace, one shared watch
    assert watch.watches_opened() == 2  # one WATCH of Kernels, one of their Pods
    assert provisioned(clients) == []


def test_a_restarted_server_reattaches_from_the_provisioner_info(
    jupyter: Callable[..., Path], clients: Clients
) -> None:
    jupyter()
    km = started()
    info = asyncio.run(km.provisioner.get_provisioner_info())  # what a server persists
    assert info["kernel_controller"]["name"] == provisioned(clients)[0]["metadata"]["name"]

    # A new server process: a fresh provisioner loaded from the persisted info.
    Clusters.shared().close()
    again = KernelControllerProvisioner(kernel_id=km.kernel_id, kernel_spec=km.kernel_spec)

    async def reattach() -> int | None:
        await again.load_provisioner_info(info)
        watch = (
            Clusters.shared()
            .get(info["kernel_controller"]["kubeconfig"])
            .watch(info["kernel_controller"]["namespace"])
        )
        await Clusters.shared().run(watch.wait_for_sync, 30)
        alive = await again.poll()
        await again.cleanup(restart=False)  # shut down through the reattached provisioner
        return alive

    assert asyncio.run(reattach()) is None  # alive: reattached, not leaked
    assert provisioned(clients) == []
    km.cleanup_resources()


def test_a_kernel_the_api_server_rejects_fails_at_once_with_its_message(
    jupyter: Callable[..., Path], clients: Clients, tmp_path: Path
) -> None:
    template = tmp_path / "template.json"
    template.write_text('{"spec": {"restartPolicy": "Always"}}')  # the CRD allows Never/OnFailure
    jupyter(f"--template={template}")
    with pytest.raises(LaunchError) as failed:
        started()

    assert failed.value.reason == "Invalid"
    assert "restartPolicy must be Never or OnFailure" in str(failed.value)
    assert provisioned(clients) == []
