"""``config/overlays/namespaced``, made for one namespace the way README "Deployment" says
(a kustomization that sets ``namespace:``), installed for real; its controller, run with the
Deployment's args and a token of its namespace-scoped ServiceAccount, serves the Kernels of
its namespace and leaves a Kernel of another namespace alone."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kubernetes import client

from controllerprocess import ControllerProcess
from deploytest import (
    CONFIG,
    apply,
    container_args,
    find,
    render,
    service_account_kubeconfig,
    write_kustomization,
)
from eventually import eventually
from informers import RestClient
from kerneltest import Clients, kernel_body

TIMEOUT = 30.0
IGNORED_FOR = 5.0


@pytest.fixture
def elsewhere(api_client: client.ApiClient) -> Iterator[Clients]:
    """Clients of another namespace (deleted afterwards)."""
    core = client.CoreV1Api(api_client)
    name = core.create_namespace({"metadata": {"generateName": "other-"}}).metadata.name
    try:
        yield Clients(RestClient(api_client), name)
    finally:
        core.delete_namespace(name)


@pytest.fixture
def installed(
    api_client: client.ApiClient, kubeconfig: str, namespace: str, tmp_path: Path
) -> tuple[list[str], str]:
    """The overlay made for ``namespace`` and applied; returns the Deployment's args as the
    kubelet would expand them and a kubeconfig acting as the overlay's ServiceAccount."""
    where = write_kustomization(
        tmp_path / "instance", resources=[CONFIG / "overlays" / "namespaced"], namespace=namespace
    )
    docs = render(where)
    apply(docs, kubeconfig=kubeconfig)
    account = find(docs, "ServiceAccount")["metadata"]["name"]
    sa_kubeconfig = service_account_kubeconfig(
        api_client,
        admin_kubeconfig=kubeconfig,
        namespace=namespace,
        service_account=account,
        path=tmp_path / "sa.kubeconfig",
    )
    args = container_args(
        find(docs, "Deployment"),
        env={"POD_NAMESPACE": namespace},
        drop=("--metrics-addr", "--probe-addr"),
    )
    return args, sa_kubeconfig


def test_a_namespaced_controller_serves_only_its_namespace(
    installed: tuple[list[str], str],
    clients: Clients,
    elsewhere: Clients,
    spawn: Callable[..., ControllerProcess],
    api_client: client.ApiClient,
) -> None:
    args, sa_kubeconfig = installed
    namespace = clients.namespace
    assert f"--namespaces={namespace}" in args
    proc = spawn(sa_kubeconfig, *args)
    proc.wait_ready()

    elsewhere.kernels.create(kernel_body("elsewhere"))
    created = time.monotonic()
    clients.kernels.create(kernel_body("mine"))
    eventually(lambda: clients.get(clients.pods, "mine"), timeout=TIMEOUT, message="no Pod")
    eventually(lambda: clients.get(clients.services, "mine"), timeout=TIMEOUT, message="no Svc")
    eventually(
        lambda: "status" in (clients.get(clients.kernels, "mine") or {}),
        timeout=TIMEOUT,
        message="no status",
    )
    lease = client.CoordinationV1Api(api_client).read_namespaced_lease(
        "kernel-controller", namespace
    )
    assert lease.spec.holder_identity

    while time.monotonic() - created < IGNORED_FOR:  # bounded: nothing must happen there
        assert elsewhere.get(elsewhere.pods, "elsewhere") is None
        assert elsewhere.get(elsewhere.services, "elsewhere") is None
        time.sleep(0.2)
    assert "status" not in (elsewhere.get(elsewhere.kernels, "elsewhere") or {})
    assert "forbidden" not in proc.output()  # it never tried beyond its namespace
    assert proc.terminate() == 0
