"""Two controller processes with leader election on the real control plane: one reconciles at
a time; kill -9 of the leader → the other takes over within lease + retry (+ margin) and
no Kernel gets a second Pod; SIGTERM of the leader → exit 0 and immediate takeover; a second
SIGTERM while the first one's graceful shutdown waits → exit at once."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from kubernetes.client import ApiClient, CoordinationV1Api

from controllerprocess import ControllerProcess, wait_exit
from eventually import eventually
from kerneltest import Clients, kernel_body
from localcluster import APISERVER, ControlPlane

LEASE, RENEW, RETRY = 3.0, 2.0, 0.5
LEASE_ID = "kc-test"
MARGIN = 2.5  # the follower's jittered retry (up to 1.2 x retry) plus creating the Pod


def leader_args(namespace: str) -> list[str]:
    return [
        f"--namespaces={namespace}",
        "--enable-leader-election",
        f"--leader-election-namespace={namespace}",
        f"--leader-election-id={LEASE_ID}",
        f"--lease-duration={LEASE}s",
        f"--renew-deadline={RENEW}s",
        f"--retry-period={RETRY}s",
        "--shutdown-timeout=5s",
    ]


def is_leader(proc: ControllerProcess) -> bool:
    if proc.popen.poll() is not None:
        return False
    try:
        return proc.value("leader_election_master_status", name=LEASE_ID) == 1.0
    except OSError:
        return False


def reconciles(proc: ControllerProcess) -> float:
    return sum(
        value
        for (name, labels), value in proc.metrics().items()
        if name == "controller_runtime_reconcile_total"
    )


class TwoLeaderWatch:
    """Checks continuously (every 50 ms) that at most one process says it leads."""

    def __init__(self, procs: list[ControllerProcess]) -> None:
        self.procs = procs
        self.violations: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="two-leader-watch")

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            if sum(is_leader(p) for p in list(self.procs)) > 1:
                self.violations.append(time.monotonic())

    def __enter__(self) -> TwoLeaderWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


def test_only_the_leader_reconciles_and_failover_is_fast(
    spawn: Callable[..., ControllerProcess], clients: Clients
) -> None:
    args = leader_args(clients.namespace)
    a, b = spawn(*args), spawn(*args)
    a.wait_ready()
    b.wait_ready()

    def one_leader() -> ControllerProcess | None:
        leading = [p for p in (a, b) if is_leader(p)]
        return leading[0] if len(leading) == 1 else None

    leader = eventually(one_leader, timeout=30, message="no single leader")
    follower = b if leader is a else a
    procs = [a, b]
    with TwoLeaderWatch(procs) as watch:
        clients.kernels.create(kernel_body("f1"))
        pod1 = eventually(lambda: clients.get(clients.pods, "f1"), timeout=30, message="no pod")
        assert reconciles(follower) == 0  # the standby does not reconcile

        leader.kill()
        killed_at = time.monotonic()
        clients.kernels.create(kernel_body("f2"))
        eventually(lambda: clients.get(clients.pods, "f2"), timeout=30, message="no takeover")
        takeover = time.monotonic() - killed_at
        assert takeover <= LEASE + RETRY + MARGIN, f"takeover took {takeover:.1f} s"
        assert is_leader(follower)
        assert clients.pods.get("f1")["metadata"]["uid"] == pod1["metadata"]["uid"]

        c = spawn(*args)
        procs.append(c)
        c.wait_ready()
        stopped_at = time.monotonic()
        assert follower.terminate() == 0  # clean SIGTERM: drains, releases the Lease
        exited = time.monotonic() - stopped_at
        eventually(lambda: is_leader(c), timeout=10, message="no takeover after release")
        handover = time.monotonic() - stopped_at - exited
        assert handover <= 2.2 * RETRY + 1.0, f"handover took {handover:.1f} s after exit"
        clients.kernels.create(kernel_body("f3"))
        eventually(lambda: clients.get(clients.pods, "f3"), timeout=10, message="c not working")
    assert watch.violations == []
    assert clients.pods.get("f1")["metadata"]["uid"] == pod1["metadata"]["uid"]


def test_losing_the_lease_stops_reconciling_and_exits_non_zero(
    spawn: Callable[..., ControllerProcess], clients: Clients, api_client: ApiClient
) -> None:
    proc = spawn(*leader_args(clients.namespace))
    proc.wait_ready()
    eventually(lambda: is_leader(proc), timeout=30, message="never became leader")

    # Someone else takes the Lease over (as a partitioned replica would find on return).
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    CoordinationV1Api(api_client).patch_namespaced_lease(
        LEASE_ID,
        clients.namespace,
        {"spec": {"holderIdentity": "thief", "renewTime": now, "leaseDurationSeconds": 60}},
    )
    taken_at = time.monotonic()

    assert wait_exit(proc, timeout=RENEW + 5) == 1
    assert time.monotonic() - taken_at <= RENEW + 1
    assert "lost the leader lease" in proc.output()


def test_a_second_signal_exits_at_once_while_the_first_one_waits(
    spawn: Callable[..., ControllerProcess], clients: Clients, control_plane: ControlPlane
) -> None:
    # Default Lease timings: releasing the Lease on SIGTERM waits up to the 10 s renew
    # deadline for an API server that does not answer.
    proc = spawn(
        f"--namespaces={clients.namespace}",
        "--enable-leader-election",
        f"--leader-election-namespace={clients.namespace}",
        f"--leader-election-id={LEASE_ID}",
    )
    proc.wait_ready()
    eventually(lambda: is_leader(proc), timeout=30, message="never became leader")
    control_plane.pause(APISERVER)
    try:
        proc.popen.send_signal(signal.SIGTERM)
        # Two SIGTERMs sent before the first is handled are one (the kernel and Python both
        # keep a single pending flag per signal): the second is sent once the first was seen.
        eventually(
            lambda: "received SIGTERM" in proc.output(),
            timeout=10,
            interval=0.02,
            message="the first SIGTERM was never handled",
        )
        gracefully = time.monotonic() + 1.0
        while time.monotonic() < gracefully:  # the graceful shutdown is still under way
            assert proc.popen.poll() is None, "exited before the Lease could be released"
            time.sleep(0.05)  # watching for a bounded time that the process stays
        second = time.monotonic()
        proc.popen.send_signal(signal.SIGTERM)
        code = wait_exit(proc, timeout=5)
        took = time.monotonic() - second
    finally:
        control_plane.resume(APISERVER)

    assert code == 1  # not a clean shutdown: the Lease was not released
    assert took < 1.0
