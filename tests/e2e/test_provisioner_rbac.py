"""Least privilege for the Jupyter provisioner, on the real API server: with nothing but a
TokenRequest token of the ServiceAccount of ``config/provisioner-rbac``, a kernel is launched,
runs code, is restarted and shut down (and, in the controller's secret-key mode, its key is
read). Then, rule by rule, the Role without one verb breaks exactly the step that needs it.
The controller and the local node run with their own credentials."""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from jupyter_client import KernelManager
from kubernetes import client

from controllerprocess import ControllerProcess
from deploytest import CONFIG, Doc, install_rbac, without_rule
from e2e.provisioning import KERNELSPEC, execute, install_kernelspec, jupyter_env, provisioned
from informers import ApiError
from kernel_provisioner.cluster import Clusters
from kernel_provisioner.provisioner import LaunchError
from kerneltest import Clients

Mutate = Callable[[list[Doc]], list[Doc]]


@pytest.fixture
def as_provisioner(
    api_client: client.ApiClient,
    kubeconfig: str,
    namespace: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Callable[..., None]]:
    """``as_provisioner(mutate=None)``: install ``config/provisioner-rbac`` (optionally
    changed) and a kernelspec whose provisioner acts as its ServiceAccount."""

    def setup(mutate: Mutate | None = None) -> None:
        _, sa_kubeconfig = install_rbac(
            api_client,
            admin_kubeconfig=kubeconfig,
            namespace=namespace,
            work_dir=tmp_path / "rbac",
            mutate=mutate,
            config=CONFIG / "provisioner-rbac",
        )
        path = install_kernelspec(
            tmp_path / "prefix",
            "--launch-timeout=8",
            namespace=namespace,
            kubeconfig=sa_kubeconfig,
        )
        for name, value in jupyter_env(path, tmp_path).items():
            monkeypatch.setenv(name, value)
        for name in [n for n in os.environ if n.startswith("KERNEL_")]:
            monkeypatch.delenv(name)

    yield setup
    Clusters.shared().close()
    gc.collect()  # a ZeroMQ context or socket left open is reported on this test


def run_through(km: KernelManager) -> None:
    """Launch, run code, restart, run code, shut down."""
    km.start_kernel()
    for _ in range(2):
        kc = km.client()
        kc.start_channels()
        try:
            kc.wait_for_ready(timeout=60)
            assert execute(kc, "6 * 7") == ("ok", "42")
        finally:
            kc.stop_channels()
        if _ == 0:
            km.restart_kernel()
    km.shutdown_kernel()


@pytest.mark.parametrize("key_mode", ["kernel-id", "secret"])
def test_the_whole_flow_works_as_the_service_account(
    controller: Callable[..., ControllerProcess],
    as_provisioner: Callable[..., None],
    clients: Clients,
    key_mode: str,
) -> None:
    controller(f"--connection-key={key_mode}")
    as_provisioner()
    run_through(KernelManager(kernel_name=KERNELSPEC))
    assert provisioned(clients) == []


@dataclass(frozen=True)
class Missing:
    resource: str
    verb: str
    key_mode: str
    step: str  # the step that must fail: "launch", "restart" or "shutdown"
    error: str  # in the message


MISSING = [
    Missing("kernels", "create", "kernel-id", "launch", 'cannot create resource "kernels"'),
    Missing("kernels", "list", "kernel-id", "launch", "cannot list and watch Kernels"),
    Missing("kernels", "watch", "kernel-id", "launch", "cannot list and watch Kernels"),
    Missing("pods", "list", "kernel-id", "launch", "cannot list and watch Kernels and Pods"),
    Missing("pods", "watch", "kernel-id", "launch", "cannot list and watch Kernels and Pods"),
    Missing("secrets", "get", "secret", "launch", 'cannot get resource "secrets"'),
    Missing("pods", "delete", "kernel-id", "restart", 'cannot delete resource "pods"'),
    Missing("kernels", "delete", "kernel-id", "shutdown", 'cannot delete resource "kernels"'),
]


@pytest.mark.parametrize("case", MISSING, ids=[f"without {m.resource} {m.verb}" for m in MISSING])
def test_each_rule_is_needed(
    controller: Callable[..., ControllerProcess],
    as_provisioner: Callable[..., None],
    clients: Clients,
    case: Missing,
) -> None:
    controller(f"--connection-key={case.key_mode}")
    as_provisioner(lambda docs: without_rule(docs, resource=case.resource, verb=case.verb))
    km = KernelManager(kernel_name=KERNELSPEC)
    try:
        if case.step != "launch":
            km.start_kernel()
        with pytest.raises((LaunchError, ApiError)) as failed:
            if case.step == "launch":
                km.start_kernel()
            elif case.step == "restart":
                km.restart_kernel()
            else:
                km.shutdown_kernel()
        assert case.error in str(failed.value)
    finally:
        with contextlib.suppress(Exception):  # closes its ZeroMQ sockets and context
            km.cleanup_resources()
        for kernel in provisioned(clients):  # what the crippled provisioner could not delete
            clients.kernels.delete(kernel["metadata"]["name"])
    if case.step == "launch":
        assert provisioned(clients) == []  # nothing was left behind by the failed launch
