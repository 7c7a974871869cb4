"""The whole product on one machine: Kernel → Pod on the local node running a real IPython
kernel → a jupyter_client client built only from the Kernel's annotation executes code → the
idle kernel exits, the Kernel is culled and its children are garbage-collected."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from controllerprocess import ControllerProcess
from eventually import eventually
from kernel_connect import connection_info, run_code
from kerneltest import Clients, kernel_body
from kerneltest import ready_kernel as ready


def ready_reason(clients: Clients, name: str) -> str | None:
    kernel = clients.get(clients.kernels, name)
    for cond in ((kernel or {}).get("status") or {}).get("conditions") or ():
        if cond["type"] == "Ready":
            return str(cond.get("reason"))
    return None


def test_kernel_runs_code_then_is_culled_when_idle(
    controller: Callable[..., ControllerProcess], clients: Clients
) -> None:
    controller()
    clients.kernels.create(kernel_body("e2e-1", idleTimeoutSeconds=6))

    kernel = eventually(lambda: ready(clients, "e2e-1"), timeout=90, message="not Ready")
    info = connection_info(kernel, host="pod", key=None)
    assert info["ip"].startswith("127.")
    assert run_code(info, "1+1", timeout=30) == "2"

    eventually(
        lambda: clients.get(clients.kernels, "e2e-1") is None,
        timeout=60,
        message="idle kernel not culled",
    )
    eventually(
        lambda: (
            clients.get(clients.pods, "e2e-1") is None
            and clients.get(clients.services, "e2e-1") is None
        ),
        timeout=90,
        interval=0.5,
        message="Pod and Service not garbage-collected",
    )


def test_a_crashing_kernel_ends_as_kernel_failed(
    controller: Callable[..., ControllerProcess], clients: Clients
) -> None:
    controller()
    clients.kernels.create(kernel_body("e2e-crash"))
    kernel = eventually(lambda: ready(clients, "e2e-crash"), timeout=90, message="not Ready")
    info = connection_info(kernel, host="pod", key=None)
    with contextlib.suppress(Exception):  # the kernel dies mid-request, as intended
        run_code(info, "import os; os._exit(3)", timeout=5)

    eventually(
        lambda: ready_reason(clients, "e2e-crash") == "KernelFailed",
        timeout=60,
        message="crash not reported as KernelFailed",
    )
    kernel = clients.kernels.get("e2e-crash")
    ready_cond = next(c for c in kernel["status"]["conditions"] if c["type"] == "Ready")
    assert "exit code 3" in ready_cond["message"]


def test_twenty_kernels_at_once_all_become_ready_and_answer(
    controller: Callable[..., ControllerProcess], clients: Clients
) -> None:
    controller("--workers=8")
    names = [f"many-{i:02d}" for i in range(20)]
    for name in names:
        clients.kernels.create(kernel_body(name))

    kernels = {
        name: eventually(lambda name=name: ready(clients, name), timeout=240, message=f"{name}")
        for name in names
    }
    ips = {k["status"]["podIP"] for k in kernels.values()}
    assert len(ips) == 20

    def answer(name: str) -> str:
        return run_code(
            connection_info(kernels[name], host="pod", key=None), f"'{name}'", timeout=60
        )

    # One thread: jupyter_client keeps an asyncio loop per thread, which a pool would leak.
    answers = [answer(name) for name in names]
    assert answers == [f"'{name}'" for name in names]
