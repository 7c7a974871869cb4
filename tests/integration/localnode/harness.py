"""Harness for the local node tests: the node (``python -m localnode``) as a real process, the
test's own API reads and writes, a kernel Pod builder and a stand-in kernel launch script.

Each node gets a unique Node name and watches only the test's namespace, so nodes of other
tests never take its Pods. The stand-in kernel (``fake_kernel.py``, run by ``fake-launch.sh``
with ``$KERNEL_PYTHON``) records its pid, cwd and environment in ``$TEST_OUT/<pod>.json``;
listens on ``$KERNEL_IP:$KERNEL_SHELL_PORT`` (once ``$TEST_OUT/<pod>.listen`` exists when
``TEST_GATE=1``); exits with ``$TEST_EXIT_CODE`` when a client sends ``exit``; and ignores
SIGTERM when ``TEST_IGNORE_SIGTERM=1``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from eventually import eventually
from informers import NotFound, RequestInfo, Resource, ResourceClient, RestClient

REPO = Path(__file__).resolve().parents[3]
PODS = Resource("", "v1", "pods")
SECRETS = Resource("", "v1", "secrets")
NODES = Resource("", "v1", "nodes", namespaced=False)
KERNEL_LABEL = "jupyter.org/kernel-name"
NODE_START_TIMEOUT = 60.0
NODE_STOP_TIMEOUT = 30.0

FAKE_LAUNCH = """#!/usr/bin/env bash
# Stand-in for kernel_launch/bootstrap-kernel.sh: the fake kernel, run with $KERNEL_PYTHON.
exec "$KERNEL_PYTHON" "$(dirname "$0")/fake_kernel.py"
"""

FAKE_KERNEL = """
import json, os, pathlib, signal, socket, sys, threading

if os.environ.get("TEST_IGNORE_SIGTERM") == "1":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)

out = pathlib.Path(os.environ["TEST_OUT"])
name = os.environ["HOSTNAME"]
names = ("KERNEL_IP", "KERNEL_PYTHON", "KERNEL_KEY", "KERNEL_SHELL_PORT", "POD_NAME", "KUBECONFIG")
record = {"pid": os.getpid(), "cwd": os.getcwd(), "env": {n: os.environ.get(n) for n in names}}
tmp = out / f"{name}.json.tmp"
tmp.write_text(json.dumps(record))
tmp.rename(out / f"{name}.json")
if os.environ.get("TEST_GATE") == "1":
    gate = out / f"{name}.listen"
    while not gate.exists():
        threading.Event().wait(0.05)
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind((os.environ["KERNEL_IP"], int(os.environ["KERNEL_SHELL_PORT"])))
server.listen(16)
print(f"fake kernel listening on {server.getsockname()}", flush=True)
while True:
    conn, _ = server.accept()
    with conn:
        conn.settimeout(2)
        try:
            data = conn.recv(64)
        except OSError:
            data = b""
    if data.strip() == b"exit":
        code = int(os.environ.get("TEST_EXIT_CODE", "0"))
        print(f"fake kernel exiting with {code}", file=sys.stderr, flush=True)
        sys.exit(code)
"""


class NodeProcess:
    """One ``python -m localnode`` process; ``stop()`` SIGTERMs it and returns its status."""

    def __init__(self, *, kubeconfig: str, namespace: str, work: Path, args: list[str]) -> None:
        self.name = f"node-{uuid.uuid4().hex[:10]}"
        self.work = work
        self.state_dir = work / "state"
        self.log_path = work / "node.log"
        ready = work / "node.ready"
        argv = [
            sys.executable, "-m", "localnode", f"--kubeconfig={kubeconfig}",
            f"--node-name={self.name}", f"--namespace={namespace}",
            f"--state-dir={self.state_dir}", f"--log-file={self.log_path}",
            f"--ready-file={ready}", "--heartbeat=1", "--shutdown-grace=5", *args,
        ]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith("KERNEL_")}
        env["PYTHONPATH"] = f"{REPO / 'src'}:{REPO / 'hack'}"
        env["KUBECONFIG"] = kubeconfig  # must not reach the kernels
        with (work / "node.out").open("ab") as out:
            self.popen = subprocess.Popen(
                argv, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip

        def started() -> bool:
            if self.popen.poll() is not None:
                raise AssertionError(f"node exited {self.popen.returncode}:\n{self.output()}")
            return ready.exists()

        eventually(started, timeout=NODE_START_TIMEOUT, message="local node not ready")

    def stop(self) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(NODE_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
            raise

    def output(self) -> str:
        parts = []
        for path in (self.work / "node.out", self.log_path):
            with contextlib.suppress(OSError):
                parts.append(path.read_text(errors="replace"))
        return "\n".join(parts)


class Cluster:
    """The test's own reads and writes, as plain JSON."""

    def __init__(self, rest: RestClient, namespace: str, out: Path) -> None:
        self.rest = rest
        self.namespace = namespace
        self.out = out
        self.pods = ResourceClient(rest, PODS, namespace=namespace)
        self.secrets = ResourceClient(rest, SECRETS, namespace=namespace)
        self.nodes = ResourceClient(rest, NODES)

    def pod(self, name: str) -> dict[str, Any] | None:
        try:
            return self.pods.get(name)
        except NotFound:
            return None

    def create_pod(self, name: str, port: int, **options: Any) -> dict[str, Any]:
        return self.pods.create(kernel_pod(name, port, out=self.out, **options))

    def kernel_record(self, name: str) -> dict[str, Any] | None:
        path = self.out / f"{name}.json"
        return json.loads(path.read_text()) if path.exists() else None

    def delete_all_pods(self) -> None:
        path = PODS.path(namespace=self.namespace)
        with contextlib.suppress(Exception):
            info = RequestInfo(verb="deletecollection", resource="pods")
            self.rest.request("DELETE", path, info=info, body={"gracePeriodSeconds": 0})


def kernel_pod(
    name: str,
    port: int,
    *,
    out: Path,
    exit_code: int = 0,
    gate: bool = False,
    env: list[dict[str, Any]] | None = None,
    probe: bool = True,
    **container: Any,
) -> dict[str, Any]:
    main: dict[str, Any] = {
        "name": name,
        "image": "localnode/fake-kernel:test",
        "env": [
            {"name": "KERNEL_SHELL_PORT", "value": str(port)},
            {"name": "KERNEL_IP", "value": "0.0.0.0"},  # noqa: S104 - the node's value wins
            {"name": "TEST_OUT", "value": str(out)},
            {"name": "TEST_EXIT_CODE", "value": str(exit_code)},
            {"name": "TEST_GATE", "value": "1" if gate else "0"},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            *(env or []),
        ],
        **container,
    }
    if probe:
        main["readinessProbe"] = {"tcpSocket": {"port": port}, "periodSeconds": 2}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {KERNEL_LABEL: name}},
        "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 10,
                 "containers": [main]},
    }  # fmt: skip
