"""End-to-end fixtures: the local node (real kernel processes) and a controller process, both
against the session's control plane, for one test module."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from controllerprocess import ControllerProcess

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def local_node(kubeconfig: str, namespace: str, tmp_path: Path) -> Iterator[Path]:
    """The local node agent running real kernels of the test's namespace; yields its state
    directory."""
    state = tmp_path / "localnode"
    state.mkdir()
    log = (state / "node.log").open("ab")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO / "hack")])}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "localnode",
            f"--kubeconfig={kubeconfig}",
            f"--node-name=e2e-{namespace}",
            f"--namespace={namespace}",
            f"--state-dir={state}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    try:
        yield state
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        log.close()


@pytest.fixture
def controller(
    kubeconfig: str, namespace: str, tmp_path: Path, local_node: Path
) -> Iterator[Callable[..., ControllerProcess]]:
    procs: list[ControllerProcess] = []

    def start(*args: str) -> ControllerProcess:
        proc = ControllerProcess(
            kubeconfig=kubeconfig,
            args=[f"--namespaces={namespace}", "--workers=4", *args],
            log_path=tmp_path / f"controller-{len(procs)}.log",
        )
        procs.append(proc)
        proc.wait_ready()
        return proc

    yield start
    for proc in procs:
        proc.terminate()
        proc.close()
