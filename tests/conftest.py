"""Shared fixtures: the real local control plane (one per session), a fresh namespace per
test, and a guard that fails any test leaving threads behind.

Tests under ``tests/integration`` are marked ``cluster`` automatically; they start the
control plane on first use, with the CRDs of ``config/crd/bases`` installed. Set
``KC_TEST_KEEP=1`` to keep its work directory after the run.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

import localcluster
from informers import RestClient
from kerneltest import Clients
from localcluster import ControlPlane, default_bin_dir

THREAD_LEAK_GRACE_SECONDS = 5.0

_planes: list[ControlPlane] = []


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in item.path.parts or "e2e" in item.path.parts:
            item.add_marker(pytest.mark.cluster)


_SESSION_STARTED = time.time()
IMAGES_REPORT = Path(__file__).resolve().parents[1] / ".bench" / "images.json"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The images built by tests/integration/deploy/test_containers.py: build time, size."""
    if IMAGES_REPORT.is_file() and IMAGES_REPORT.stat().st_mtime >= _SESSION_STARTED:
        terminalreporter.write_sep("-", "images built (podman)")
        for name, image in json.loads(IMAGES_REPORT.read_text()).items():
            terminalreporter.write_line(
                f"{name}: {image['tag']}, {image['size_mb']} MB, built in "
                f"{image['build_seconds']} s"
            )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report: pytest.TestReport = yield
    setattr(item, f"rep_{report.when}", report)  # lets fixtures see how the test went
    if report.failed and _planes and item.get_closest_marker("cluster") is not None:
        report.sections.append(("control plane logs", _planes[0].diagnostics()))
    return report


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """A running etcd + kube-apiserver + kube-controller-manager for this test session, with
    the project's CRDs (``config/crd/bases``) installed before the controller manager starts."""
    work_dir = tmp_path_factory.mktemp("controlplane")
    plane = ControlPlane(bin_dir=default_bin_dir(), work_dir=work_dir)
    plane.start(before_controller_manager=lambda: install_crds(plane.kubeconfig_path))
    _planes.append(plane)
    try:
        yield plane
    finally:
        _planes.remove(plane)
        plane.stop()
        if not os.environ.get("KC_TEST_KEEP"):
            shutil.rmtree(work_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def kubeconfig(control_plane: ControlPlane) -> str:
    """Path of an admin (system:masters) kubeconfig for the session's control plane."""
    return str(control_plane.kubeconfig_path)


@pytest.fixture(scope="session")
def api_client(kubeconfig: str) -> Iterator[client.ApiClient]:
    api = config.new_client_from_config(config_file=kubeconfig)
    try:
        yield api
    finally:
        api.close()


@pytest.fixture
def clients(api_client: client.ApiClient, namespace: str) -> Clients:
    """Plain JSON clients for the test's own reads and writes in its namespace."""
    return Clients(RestClient(api_client), namespace)


@pytest.fixture
def namespace(api_client: client.ApiClient) -> Iterator[str]:
    """A fresh namespace for one test, deleted (asynchronously) afterwards."""
    core = client.CoreV1Api(api_client)
    created = core.create_namespace({"metadata": {"generateName": "test-"}})
    name = created.metadata.name
    assert name
    try:
        yield name
    finally:
        core.delete_namespace(name)


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """Fail a test that leaves threads running after it (joined within a short grace)."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + THREAD_LEAK_GRACE_SECONDS
    while True:
        leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not leaked or time.monotonic() > deadline:
            break
        leaked[0].join(0.05)
    assert not leaked, f"threads left behind: {[t.name for t in leaked]}"


def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]


def install_crds(kubeconfig: Path) -> None:
    """Apply every CRD in ``config/crd/bases`` and wait until each is Established (before
    kube-controller-manager starts, so its garbage collector knows them at once)."""
    paths = sorted((repo_root() / "config" / "crd" / "bases").glob("*.yaml"))
    localcluster.install_crds(kubeconfig, paths)
