"""A real Jupyter Server (started by the test on a free loopback port) runs its kernels as
Kernel resources through the provisioner: REST to start, restart and delete, code over the
kernel's websocket channel, and the server's own restarter bringing a kernel back when its Pod
is deleted behind its back. The Kernel resource follows each step."""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from tornado.websocket import websocket_connect

from controllerprocess import ControllerProcess
from e2e.provisioning import KERNELSPEC, install_kernelspec, jupyter_env, provisioned
from eventually import eventually
from kerneltest import Clients
from localcluster import free_port

JUPYTER = Path(sys.executable).with_name("jupyter")
REPLY_TIMEOUT = 60.0


class Server:
    """``jupyter server`` on 127.0.0.1 with a random token; its output kept in a file."""

    def __init__(self, env: dict[str, str], root: Path, log: Path) -> None:
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.log_path = log
        self._log = log.open("ab")
        self.popen = subprocess.Popen(
            [
                str(JUPYTER),
                "server",
                "--no-browser",
                "--allow-root",  # CI runs as root; harmless otherwise
                "--ServerApp.ip=127.0.0.1",
                f"--ServerApp.port={self.port}",
                "--ServerApp.port_retries=0",
                f"--IdentityProvider.token={self.token}",
                f"--ServerApp.root_dir={root}",
            ],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def call(self, method: str, path: str, body: object = None) -> Any:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}",
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=120) as resp:  # noqa: S310
            data = resp.read()
        return json.loads(data) if data else None

    def ready(self) -> bool:
        assert self.popen.poll() is None, f"server exited:\n{self.output()}"
        try:
            return bool(self.call("GET", "/api/status"))
        except (urllib.error.URLError, ConnectionError):
            return False

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(30)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)
        self._log.close()


@pytest.fixture
def server(
    kubeconfig: str,
    namespace: str,
    tmp_path: Path,
    controller: Callable[..., ControllerProcess],
    request: pytest.FixtureRequest,
) -> Iterator[Server]:
    controller()
    jupyter_path = install_kernelspec(
        tmp_path / "prefix", namespace=namespace, kubeconfig=kubeconfig
    )
    root = tmp_path / "notebooks"
    root.mkdir()
    srv = Server(jupyter_env(jupyter_path, tmp_path), root, tmp_path / "server.log")
    try:
        eventually(srv.ready, timeout=60, interval=0.2, message="Jupyter Server not up")
        yield srv
    finally:
        srv.stop()
        failed = getattr(request.node, "rep_call", None)
        if failed is not None and failed.failed:
            print(f"--- jupyter server output:\n{srv.output()[-8000:]}")  # noqa: T201


def execute_over_websocket(srv: Server, kernel_id: str, code: str) -> str:
    """Run ``code`` over the kernel's websocket channel; its text/plain result."""

    async def run() -> str:
        url = f"ws://127.0.0.1:{srv.port}/api/kernels/{kernel_id}/channels?token={srv.token}"
        ws = await websocket_connect(url)
        msg_id = uuid.uuid4().hex
        ws.write_message(
            json.dumps(
                {
                    "header": {
                        "msg_id": msg_id,
                        "username": "test",
                        "session": uuid.uuid4().hex,
                        "msg_type": "execute_request",
                        "version": "5.3",
                        "date": datetime.now(UTC).isoformat(),
                    },
                    "parent_header": {},
                    "metadata": {},
                    "content": {"code": code, "silent": False, "store_history": False,
                                "user_expressions": {}, "allow_stdin": False},
                    "channel": "shell",
                    "buffers": [],
                }
            )
        )  # fmt: skip
        try:
            while True:
                raw = await asyncio.wait_for(ws.read_message(), REPLY_TIMEOUT)
                assert raw is not None, "websocket closed"
                msg = json.loads(raw)
                if msg.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                if msg["msg_type"] == "execute_result":
                    return str(msg["content"]["data"]["text/plain"])
                if msg["msg_type"] == "error":
                    raise AssertionError(f"{msg['content']['ename']}: {msg['content']['evalue']}")
        finally:
            ws.close()
            # Wait for the closing handshake, so the connection is closed with the loop.
            while await asyncio.wait_for(ws.read_message(), REPLY_TIMEOUT) is not None:
                pass

    return asyncio.run(run())


def the_kernel(clients: Clients) -> dict[str, Any]:
    (kernel,) = provisioned(clients)
    return kernel


def pod_uid(clients: Clients, name: str) -> str | None:
    pod = clients.get(clients.pods, name)
    return None if pod is None else str(pod["metadata"]["uid"])


def test_jupyter_server_starts_restarts_and_deletes_kernels_as_kernel_resources(
    server: Server, clients: Clients
) -> None:
    kernel_id = server.call("POST", "/api/kernels", {"name": KERNELSPEC})["id"]
    kernel = the_kernel(clients)
    name = kernel["metadata"]["name"]
    assert name.endswith(kernel_id)
    assert execute_over_websocket(server, kernel_id, "x = 6; x * 7") == "42"

    first_pod = pod_uid(clients, name)
    server.call("POST", f"/api/kernels/{kernel_id}/restart")
    assert the_kernel(clients)["metadata"]["uid"] == kernel["metadata"]["uid"]
    assert pod_uid(clients, name) not in (None, first_pod)  # a new Pod, the same Kernel
    assert execute_over_websocket(server, kernel_id, "'x' in dir()") == "False"

    server.call("DELETE", f"/api/kernels/{kernel_id}")
    assert provisioned(clients) == []
    assert server.call("GET", "/api/kernels") == []


def test_the_servers_restarter_brings_back_a_kernel_whose_pod_was_deleted(
    server: Server, clients: Clients
) -> None:
    kernel_id = server.call("POST", "/api/kernels", {"name": KERNELSPEC})["id"]
    name = the_kernel(clients)["metadata"]["name"]
    assert execute_over_websocket(server, kernel_id, "y = 1; y") == "1"
    lost = pod_uid(clients, name)

    clients.pods.delete(name, grace_period=0)  # behind the server's back

    eventually(
        lambda: "restarting kernel" in server.output().lower(),
        timeout=60,
        message="the server never saw the kernel die",
    )
    eventually(
        lambda: (
            pod_uid(clients, name) not in (None, lost)
            and server.call("GET", f"/api/kernels/{kernel_id}")["execution_state"] == "idle"
        ),
        timeout=90,
        message="the kernel was not brought back",
    )
    assert execute_over_websocket(server, kernel_id, "'y' in dir()") == "False"
    assert len(provisioned(clients)) == 1  # the same Kernel resource, not a second one
    server.call("DELETE", f"/api/kernels/{kernel_id}")
    assert provisioned(clients) == []
