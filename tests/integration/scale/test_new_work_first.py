"""New work before old (SPEC §10): with 5,000 settled Kernels, a Kernel created right after a
controller restart, or right after a leader failover, gets its Pod within 3 s and before the
initial list has been worked through: keys of the initial list wait in the work queue with a
low priority, a watch event's key goes first."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from controllerprocess import ControllerProcess, ControllerProcesses
from eventually import eventually
from informers import ResourceClient, RestClient
from integration.scale.population import NamespaceWatch, create_kernels, create_namespace
from kerneltest import kernel_body
from reconcilers.controller import KERNELS

SETTLED = 5000
NAMESPACE = "settled"
POD_WITHIN_SECONDS = 3.0
FAILOVER_WITHIN_SECONDS = 25.0
LEASE = "kernel-controller"


def reconciles(proc: ControllerProcess) -> float:
    """Reconciles the controller has finished so far, whatever their result."""
    return sum(
        value
        for (name, _), value in proc.metrics().items()
        if name == "controller_runtime_reconcile_total"
    )


def leading(proc: ControllerProcess) -> bool:
    return proc.value("leader_election_master_status", name=LEASE) == 1.0


@pytest.fixture(scope="module")
def settled(
    admin_rest: RestClient, controller_kubeconfig: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[NamespaceWatch]:
    """5,000 Kernels with their Pods, Services and statuses, and no controller running."""
    create_namespace(admin_rest, NAMESPACE)
    watch = NamespaceWatch(admin_rest, NAMESPACE)
    procs = ControllerProcesses(tmp_path_factory.mktemp("settle"))
    try:
        proc = procs.start(controller_kubeconfig, ["--workers=8"])
        proc.wait_ready()
        create_kernels(admin_rest, NAMESPACE, [f"k-{n:04d}" for n in range(SETTLED)])
        eventually(
            lambda: watch.counts() == (SETTLED, SETTLED, SETTLED),
            timeout=600,
            interval=1.0,
            message=f"{SETTLED} Kernels not settled",
        )
        eventually(
            lambda: proc.value("workqueue_depth", name="kernel") == 0,
            timeout=60,
            message="work queue not empty",
        )
        assert proc.terminate() == 0
        yield watch
    finally:
        procs.close(test_failed=False)
        watch.stop()


def create_and_time_pod(rest: RestClient, watch: NamespaceWatch, name: str) -> float:
    """Create Kernel ``name``; return the seconds until the test's informer saw its Pod."""
    created = time.monotonic()
    ResourceClient(rest, KERNELS, namespace=NAMESPACE).create(kernel_body(name))
    seen = eventually(
        lambda: watch.pod_seen(name), timeout=60, interval=0.01, message=f"no Pod for {name}"
    )
    return seen - created


@pytest.mark.timeout(900)
def test_a_kernel_created_after_a_restart_does_not_wait_for_the_initial_list(
    settled: NamespaceWatch, spawn: Callable[..., ControllerProcess], admin_rest: RestClient
) -> None:
    proc = spawn()  # a restart: a new process, the default 4 workers
    proc.wait_ready(timeout=120)

    seconds = create_and_time_pod(admin_rest, settled, "fresh-after-restart")
    done = reconciles(proc)  # read after the Pod was seen: an upper bound

    print(f"Pod after {seconds:.2f} s; {done:.0f} of {SETTLED} listed Kernels reconciled")  # noqa: T201
    assert seconds < POD_WITHIN_SECONDS
    assert done < SETTLED, "the new Kernel waited until the initial list was worked through"
    eventually(lambda: reconciles(proc) >= SETTLED, timeout=120, message="initial list not worked")


@pytest.mark.timeout(900)
def test_a_kernel_created_after_a_failover_does_not_wait_for_the_initial_list(
    settled: NamespaceWatch,
    spawn: Callable[..., ControllerProcess],
    admin_rest: RestClient,
) -> None:
    leader = spawn("--enable-leader-election")
    leader.wait_ready(timeout=120)
    eventually(lambda: leading(leader), timeout=60, message="no leader")
    standby = spawn("--enable-leader-election")
    standby.wait_ready(timeout=120)  # a warm cache; its queue holds the initial list
    assert not leading(standby)

    killed = time.monotonic()
    leader.kill()  # a crash: the Lease is not released, the standby waits for it to expire
    eventually(lambda: leading(standby), timeout=60, interval=0.05, message="no failover")
    took_over = time.monotonic() - killed
    seconds = create_and_time_pod(admin_rest, settled, "fresh-after-failover")
    done = reconciles(standby)

    print(  # noqa: T201
        f"failover {took_over:.1f} s; Pod after {seconds:.2f} s; "
        f"{done:.0f} of {SETTLED} listed Kernels reconciled"
    )
    assert took_over < FAILOVER_WITHIN_SECONDS
    assert seconds < POD_WITHIN_SECONDS
    assert done < SETTLED, "the new Kernel waited until the initial list was worked through"
