"""Fixtures that run ``kernel-controller`` processes against the session's control plane."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from controllerprocess import ControllerProcess


@pytest.fixture
def spawn(
    kubeconfig: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., ControllerProcess]]:
    """``spawn(*args, env=...)`` starts a controller process; all are killed afterwards, and
    their output is attached to the report of a failed test."""
    procs: list[ControllerProcess] = []

    def start(*args: str, env: dict[str, str] | None = None) -> ControllerProcess:
        proc = ControllerProcess(
            kubeconfig=kubeconfig,
            args=list(args),
            log_path=tmp_path / f"controller-{len(procs)}.log",
            env=env,
        )
        procs.append(proc)
        return proc

    yield start
    failed = getattr(request.node, "rep_call", None)
    for n, proc in enumerate(procs):
        proc.close()
        if failed is not None and failed.failed:
            print(f"--- controller {n} output:\n{proc.output()[-6000:]}")  # noqa: T201
