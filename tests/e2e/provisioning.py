"""What the provisioner's end-to-end tests share: a kernelspec installed with the real
``jupyter kernel-controller install-kernelspec`` into a temporary prefix that Jupyter searches
(``JUPYTER_PATH``), and small helpers to run code on a kernel and read its Kernel."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from jupyter_client.blocking.client import BlockingKernelClient

from kerneltest import Clients

KERNELSPEC = "python3-k8s"
JUPYTER_KERNEL_CONTROLLER = Path(sys.executable).with_name("jupyter-kernel-controller")
REPLY_TIMEOUT = 60.0


def install_kernelspec(
    prefix: Path, *extra: str, namespace: str, kubeconfig: str, name: str = KERNELSPEC
) -> Path:
    """Install a kernelspec for ``namespace`` of the local node (Pod IPs, no cluster DNS)
    with the console script, as a user would; returns the directory to put on JUPYTER_PATH."""
    subprocess.run(
        [
            str(JUPYTER_KERNEL_CONTROLLER),
            "install-kernelspec",
            f"--name={name}",
            "--display-name=Python (Kubernetes)",
            "--image=registry.example.org/kernel-py:1",  # the local node runs its own Python
            f"--namespace={namespace}",
            "--connect-via=pod-ip",
            f"--kubeconfig={kubeconfig}",
            "--launch-timeout=90",
            f"--prefix={prefix}",
            *extra,
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return prefix / "share" / "jupyter"


def jupyter_env(jupyter_path: Path, tmp: Path) -> dict[str, str]:
    """An environment in which Jupyter tools find the kernelspec and keep their state in tmp."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KERNEL_", "JUPYTER_"))}
    env.update(
        JUPYTER_PATH=str(jupyter_path),
        JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
        JUPYTER_DATA_DIR=str(tmp / "data"),
        JUPYTER_CONFIG_DIR=str(tmp / "config"),
        JUPYTER_PLATFORM_DIRS="1",
        IPYTHONDIR=str(tmp / "ipython"),
    )
    return env


def execute(kc: BlockingKernelClient, code: str) -> tuple[str, str | None]:
    """Run ``code``: the reply's status and the text/plain result (or stdout) if any."""
    outputs: list[str] = []

    def on_iopub(msg: dict[str, Any]) -> None:
        if msg["msg_type"] == "execute_result":
            outputs.append(msg["content"]["data"]["text/plain"])
        elif msg["msg_type"] == "stream":
            outputs.append(msg["content"]["text"].strip())

    reply = kc.execute_interactive(code, timeout=REPLY_TIMEOUT, output_hook=on_iopub)
    return str(reply["content"]["status"]), (outputs[0] if outputs else None)


def provisioned(clients: Clients) -> list[dict[str, Any]]:
    """The Kernels the provisioner created in the test's namespace."""
    items = clients.kernels.list(limit=0, continue_token="", resource_version="")["items"]
    return [
        k
        for k in items
        if (k["metadata"].get("labels") or {}).get("jupyter.org/launched-by")
        == "kernel-controller-provisioner"
    ]


def container_env(kernel: dict[str, Any]) -> dict[str, str]:
    container = kernel["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", "") for e in container.get("env") or ()}
