"""Fixtures of the scale tests: a control plane of their own (thousands of Kernels must not
slow down or leak into the other tests), with the API server's audit log recording every
request of service accounts, and the controller acting as the ServiceAccount of
``config/rbac`` in ``jupyter-system`` (as deployed: not ``system:masters``, so API Priority and
Fairness applies to it and the audit log tells its requests apart from the test's)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

import localcluster
from controllerprocess import ControllerProcess, ControllerProcesses
from deploytest import install_rbac
from informers import RestClient
from localcluster import ControlPlane, default_bin_dir

CONTROLLER_NAMESPACE = "jupyter-system"  # where config/flowcontrol expects the ServiceAccount
CONTROLLER_USER = f"system:serviceaccount:{CONTROLLER_NAMESPACE}:kernel-controller"
AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: Metadata
  userGroups: ["system:serviceaccounts"]
- level: None
"""


@pytest.fixture(scope="package")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    work_dir = tmp_path_factory.mktemp("scale-controlplane")
    plane = ControlPlane(bin_dir=default_bin_dir(), work_dir=work_dir, audit_policy=AUDIT_POLICY)
    crds = sorted((Path(__file__).resolve().parents[3] / "config" / "crd" / "bases").glob("*.yaml"))
    plane.start(
        before_controller_manager=lambda: localcluster.install_crds(plane.kubeconfig_path, crds)
    )
    try:
        yield plane
    finally:
        plane.stop()
        if not os.environ.get("KC_TEST_KEEP"):
            shutil.rmtree(work_dir, ignore_errors=True)


@pytest.fixture(scope="package")
def admin_kubeconfig(plane: ControlPlane) -> str:
    return str(plane.kubeconfig_path)


@pytest.fixture(scope="package")
def admin_api(admin_kubeconfig: str) -> Iterator[client.ApiClient]:
    api = config.new_client_from_config(config_file=admin_kubeconfig)
    try:
        yield api
    finally:
        api.close()


@pytest.fixture(scope="package")
def admin_rest(admin_api: client.ApiClient) -> RestClient:
    """The test's own JSON client (system:masters: exempt from APF, not audited)."""
    return RestClient(admin_api, user_agent="scale-tests")


@pytest.fixture(scope="package")
def controller_kubeconfig(
    admin_api: client.ApiClient, admin_kubeconfig: str, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """A kubeconfig acting as the controller's ServiceAccount, with ``config/rbac``'s roles."""
    client.CoreV1Api(admin_api).create_namespace({"metadata": {"name": CONTROLLER_NAMESPACE}})
    _, path = install_rbac(
        admin_api,
        admin_kubeconfig=admin_kubeconfig,
        namespace=CONTROLLER_NAMESPACE,
        work_dir=tmp_path_factory.mktemp("scale-rbac"),
    )
    return path


@pytest.fixture
def spawn(
    tmp_path: Path, request: pytest.FixtureRequest, controller_kubeconfig: str
) -> Iterator[Callable[..., ControllerProcess]]:
    """``spawn(*args)`` starts a controller as the ServiceAccount; all are killed afterwards,
    and their output is attached to the report of a failed test."""
    procs = ControllerProcesses(tmp_path)
    yield lambda *args: procs.start(
        controller_kubeconfig, [f"--leader-election-namespace={CONTROLLER_NAMESPACE}", *args]
    )
    failed = getattr(request.node, "rep_call", None)
    procs.close(test_failed=failed is not None and failed.failed)
