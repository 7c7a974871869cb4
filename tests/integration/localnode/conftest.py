"""Fixtures for the local node tests (see ``harness.py``): a ``cluster`` client for the test's
namespace and ``start_node`` (nodes stopped afterwards)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kubernetes import client

from informers import RestClient
from integration.localnode.harness import FAKE_KERNEL, FAKE_LAUNCH, Cluster, NodeProcess


@pytest.fixture
def cluster(api_client: client.ApiClient, namespace: str, tmp_path: Path) -> Iterator[Cluster]:
    out = tmp_path / "out"
    out.mkdir()
    c = Cluster(RestClient(api_client, user_agent="tests/localnode"), namespace, out)
    yield c
    c.delete_all_pods()  # the nodes are stopped: nobody would finish graceful deletions


@pytest.fixture
def start_node(
    kubeconfig: str, tmp_path: Path, request: pytest.FixtureRequest, cluster: Cluster
) -> Iterator[Callable[..., NodeProcess]]:
    """``start_node(*args)`` runs a local node on the test's namespace (with the fake launch
    script unless ``--launch-script`` is given); every node is stopped (before the ``cluster``
    fixture deletes the Pods) and its log is printed for a failed test."""
    nodes: list[NodeProcess] = []
    launch_script = tmp_path / "fake-launch.sh"
    launch_script.write_text(FAKE_LAUNCH)
    (tmp_path / "fake_kernel.py").write_text(FAKE_KERNEL)

    def start(*args: str) -> NodeProcess:
        work = tmp_path / f"node-{len(nodes)}"
        work.mkdir()
        if not any(a.startswith("--launch-script") for a in args):
            args = (f"--launch-script={launch_script}", *args)
        node = NodeProcess(
            kubeconfig=kubeconfig, namespace=cluster.namespace, work=work, args=list(args)
        )
        nodes.append(node)
        return node

    yield start
    failed = getattr(request.node, "rep_call", None)
    for n, node in enumerate(nodes):
        node.stop()
        if failed is not None and failed.failed:
            print(f"--- local node {n} log:\n{node.output()[-8000:]}")  # noqa: T201
