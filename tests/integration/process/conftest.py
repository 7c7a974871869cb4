"""Fixtures that run ``kernel-controller`` processes against the session's control plane."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from controllerprocess import ControllerProcess, ControllerProcesses


@pytest.fixture
def spawn(
    kubeconfig: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., ControllerProcess]]:
    """``spawn(*args, env=...)`` starts a controller process; all are killed afterwards, and
    their output is attached to the report of a failed test."""
    procs = ControllerProcesses(tmp_path)
    yield lambda *args, env=None: procs.start(kubeconfig, args, env)
    failed = getattr(request.node, "rep_call", None)
    procs.close(test_failed=failed is not None and failed.failed)
