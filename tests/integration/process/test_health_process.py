"""/healthz and /readyz of a manager running in-process on the real control plane."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request

import pytest

from eventually import eventually
from kernel_controller.cli import parse_settings
from kernel_controller.manager import Manager
from kerneltest import Clients, kernel_body


def probe(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return int(resp.status), resp.read().decode()
    except urllib.error.HTTPError as err:
        return int(err.code), err.read().decode()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_healthz_fails_when_a_worker_thread_dies(kubeconfig: str, clients: Clients) -> None:
    settings = parse_settings(
        [
            f"--kubeconfig={kubeconfig}",
            "--metrics-addr=0",
            "--probe-addr=127.0.0.1:0",
            f"--namespaces={clients.namespace}",
            "--workers=2",
        ],
        {},
    )
    manager = Manager(settings, environ={}, install_signals=False, configure_logging=False)
    codes: list[int] = []
    thread = threading.Thread(target=lambda: codes.append(manager.run()), name="manager")
    thread.start()
    try:
        assert manager.wait_ready(30)
        assert probe(manager.probe_port, "/readyz") == (200, "ok\n")
        assert probe(manager.probe_port, "/healthz") == (200, "ok\n")

        def die(key: str) -> None:
            raise SystemExit  # ends the worker thread, as an unexpected crash would

        assert manager.controller is not None
        manager.controller.reconciler.reconcile = die  # type: ignore[method-assign]
        clients.kernels.create(kernel_body("h1"))

        def unhealthy() -> str | None:
            status, body = probe(manager.probe_port, "/healthz")
            return body if status == 500 else None

        body = eventually(unhealthy, timeout=30, message="/healthz stayed ok")
        assert "a controller thread died" in body
        assert probe(manager.probe_port, "/readyz")[0] == 200
    finally:
        manager.request_stop()
        thread.join(30)
    assert codes == [0]
