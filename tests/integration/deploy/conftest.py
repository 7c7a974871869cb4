"""Fixtures of the deployment tests: controller processes with any kubeconfig, the RBAC of
``config/rbac`` installed for one test (prefixed names, so tests never share a ClusterRole)
and a kubeconfig acting as its ServiceAccount."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kubernetes import client

from controllerprocess import ControllerProcess, ControllerProcesses
from deploytest import Doc, delete_cluster_scoped, install_rbac

Mutate = Callable[[list[Doc]], list[Doc]]


@pytest.fixture
def spawn(
    tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., ControllerProcess]]:
    """``spawn(kubeconfig, *args)`` starts a controller process; all are killed afterwards,
    and their output is attached to the report of a failed test."""
    procs = ControllerProcesses(tmp_path)
    yield lambda kubeconfig, *args: procs.start(kubeconfig, args)
    failed = getattr(request.node, "rep_call", None)
    procs.close(test_failed=failed is not None and failed.failed)


@pytest.fixture(name="install_rbac")
def rbac_fixture(
    api_client: client.ApiClient, kubeconfig: str, tmp_path: Path
) -> Iterator[Callable[..., str]]:
    """``install_rbac(namespace, mutate=None)``: apply ``config/rbac`` rendered into
    ``namespace`` (names prefixed with it), optionally changed by ``mutate``; return the path
    of a kubeconfig acting as its ServiceAccount. Cluster-scoped objects are deleted after."""
    installed: list[Doc] = []

    def install(namespace: str, mutate: Mutate | None = None) -> str:
        docs, path = install_rbac(
            api_client,
            admin_kubeconfig=kubeconfig,
            namespace=namespace,
            work_dir=tmp_path / f"rbac-{len(installed)}",
            name_prefix=f"{namespace}-",
            mutate=mutate,
        )
        installed.extend(docs)
        return path

    yield install
    delete_cluster_scoped(installed, kubeconfig=kubeconfig)
