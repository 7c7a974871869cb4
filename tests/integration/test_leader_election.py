"""Leader election on a real Lease of the local kube-apiserver (marker ``cluster``).

Three electors with short timings share one Lease in a fresh namespace while a checker
thread keeps asserting that no two of them lead at once:

1. ``a`` takes the free Lease; ``b`` follows and stays a follower while ``a`` renews.
2. ``a`` is "killed": its lock starts failing, so it neither renews nor releases. ``a`` gives
   up at its renew deadline and ``b`` takes over once the lease expired on b's own clock.
3. ``c`` follows ``b``; ``b`` stops cleanly and releases, so ``c`` takes over at its next
   attempt instead of after a lease duration.
4. ``c`` stops cleanly; the Lease is left free with the transitions counted.

A second test checks :class:`LeaseLock`'s compare-and-swap on the real server.

Uses the fixtures ``api_client`` and ``namespace`` of ``tests/conftest.py``.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
from kubernetes.client import ApiClient, CoordinationV1Api

from leader.config import JITTER_FACTOR, LeaderElectionConfig
from leader.elector import LeaderCallbacks, LeaderElector, Outcome
from leader.errors import Conflict, LockError, NotFound
from leader.lease import LeaderElectionRecord, LeaseLock

pytestmark = pytest.mark.cluster

LEASE_NAME = "leader-election-test"
LEASE, RENEW, RETRY = 3.0, 2.0, 0.5
MAX_PAUSE = RETRY * (1 + JITTER_FACTOR)  # the longest pause between two acquire attempts
MARGIN = 1.0  # request latency and scheduling on a busy machine
PATIENCE = 30.0  # how long any single wait of the test may take before it fails


class KillableLock:
    """A LeaseLock that fails every call after :meth:`kill`, like a frozen or dead process.

    Remembers when the last successful write started (monotonic), the earliest moment the
    Lease can carry it, so the test can bound the takeover from below.
    """

    def __init__(self, inner: LeaseLock) -> None:
        self._inner = inner
        self._killed = threading.Event()
        self._mutex = threading.Lock()
        self._last_write_started = 0.0  # guarded by _mutex

    def kill(self) -> None:
        self._killed.set()

    @property
    def last_write_started(self) -> float:
        with self._mutex:
            return self._last_write_started

    def describe(self) -> str:
        return self._inner.describe()

    def get(self, *, timeout: float) -> tuple[LeaderElectionRecord, str] | None:
        self._check()
        return self._inner.get(timeout=timeout)

    def create(self, record: LeaderElectionRecord, *, timeout: float) -> str:
        return self._write(lambda: self._inner.create(record, timeout=timeout))

    def update(self, record: LeaderElectionRecord, resource_version: str, *, timeout: float) -> str:
        return self._write(lambda: self._inner.update(record, resource_version, timeout=timeout))

    def _write(self, call: Callable[[], str]) -> str:
        self._check()
        started = time.monotonic()
        version = call()
        with self._mutex:
            self._last_write_started = started
        return version

    def _check(self) -> None:
        if self._killed.is_set():
            raise LockError("killed by the test")


@dataclass
class Candidate:
    """One elector on its own thread, and when (monotonic) it started and stopped leading."""

    identity: str
    lock: KillableLock
    elector: LeaderElector = field(init=False)
    thread: threading.Thread = field(init=False)
    stop: threading.Event = field(default_factory=threading.Event)
    became_leader: threading.Event = field(default_factory=threading.Event)
    outcome: Outcome | None = None
    error: BaseException | None = None
    started_at: float | None = None
    stopped_at: float | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._main, name=f"elector-{self.identity}")
        self.thread.start()

    def _main(self) -> None:
        try:
            self.outcome = self.elector.run(self.stop)
        except BaseException as err:
            self.error = err

    def on_started(self, _: threading.Event) -> None:
        self.started_at = time.monotonic()
        self.became_leader.set()

    def on_stopped(self) -> None:
        self.stopped_at = time.monotonic()

    def join(self) -> None:
        self.thread.join(PATIENCE)
        assert not self.thread.is_alive(), f"{self.thread.name} did not end"
        if self.error is not None:
            raise self.error


def make_candidate(api_client: ApiClient, namespace: str, identity: str) -> Candidate:
    lock = KillableLock(LeaseLock(api_client=api_client, namespace=namespace, name=LEASE_NAME))
    candidate = Candidate(identity=identity, lock=lock)
    candidate.elector = LeaderElector(
        config=LeaderElectionConfig(
            lease_name=LEASE_NAME,
            namespace=namespace,
            identity=identity,
            lease_duration=LEASE,
            renew_deadline=RENEW,
            retry_period=RETRY,
        ),
        lock=lock,
        callbacks=LeaderCallbacks(
            on_started_leading=candidate.on_started, on_stopped_leading=candidate.on_stopped
        ),
    )
    return candidate


class OneLeaderChecker(threading.Thread):
    """Samples ``is_leader()`` continuously. Leadership is one interval per run, so seeing
    x, then y, then x again leading proves that x and y led at the same moment."""

    def __init__(self, candidates: list[Candidate]) -> None:
        super().__init__(name="one-leader-checker")
        self._candidates = candidates
        self.done = threading.Event()
        self.violations: list[str] = []  # written by this thread, read after join
        self.samples = 0  # likewise

    def run(self) -> None:
        while not self.done.is_set():
            for x in self._candidates:
                for y in self._candidates:
                    if x is y:
                        continue
                    if x.elector.is_leader() and y.elector.is_leader() and x.elector.is_leader():
                        self.violations.append(f"{x.identity} and {y.identity} led at once")
            self.samples += 1
            self.done.wait(0.002)


def poll_until(condition: Callable[[], bool], *, what: str, timeout: float = PATIENCE) -> None:
    deadline = time.monotonic() + timeout
    tick = threading.Event()
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        tick.wait(0.02)


@pytest.fixture
def candidates(api_client: ApiClient, namespace: str) -> Iterator[list[Candidate]]:
    made = [make_candidate(api_client, namespace, identity) for identity in ("a", "b", "c")]
    try:
        yield made
    finally:
        for candidate in made:
            candidate.stop.set()
        for candidate in made:
            if hasattr(candidate, "thread"):
                candidate.thread.join(PATIENCE)
                assert not candidate.thread.is_alive(), f"{candidate.thread.name} leaked"


def test_one_leader_failover_after_kill_and_handover_on_release(
    candidates: list[Candidate], api_client: ApiClient, namespace: str
) -> None:
    a, b, c = candidates
    checker = OneLeaderChecker(candidates)
    checker.start()
    try:
        # 1. a takes the free Lease; b follows and stays a follower while a renews.
        a.start()
        assert a.became_leader.wait(PATIENCE), "a never acquired the free Lease"
        b.start()
        poll_until(lambda: b.elector.get_leader() == "a", what="b sees a as the leader")
        assert not b.became_leader.wait(LEASE + MAX_PAUSE), "b took a Lease that a renews"

        # 2. Kill a: no renewals, no release. b may take over only once the lease expired
        #    on its own clock: at least LEASE after a's last write, and at most one pause to
        #    notice that write plus LEASE plus one pause to try again after it.
        killed_at = time.monotonic()
        a.lock.kill()
        assert b.became_leader.wait(PATIENCE), "b never took over from the killed a"
        a.join()
        assert a.outcome is Outcome.LOST
        last_write = a.lock.last_write_started
        assert a.stopped_at is not None
        assert b.started_at is not None
        assert a.stopped_at - last_write <= RENEW + MARGIN, "a led past its renew deadline"
        assert b.started_at >= last_write + LEASE, "b took over before the lease expired"
        assert b.started_at - killed_at <= LEASE + 2 * MAX_PAUSE + MARGIN

        # 3. c follows b; b stops cleanly and releases, so c takes over at its next attempt.
        c.start()
        poll_until(lambda: c.elector.get_leader() == "b", what="c sees b as the leader")
        stopped_at = time.monotonic()
        b.stop.set()
        assert c.became_leader.wait(PATIENCE), "c never took over from the released Lease"
        b.join()
        assert b.outcome is Outcome.STOPPED
        assert c.started_at is not None
        assert c.started_at - stopped_at <= MAX_PAUSE + MARGIN < LEASE

        # 4. c stops cleanly: the Lease is left free, with both transitions counted.
        c.stop.set()
        c.join()
        assert c.outcome is Outcome.STOPPED
    finally:
        checker.done.set()
        checker.join(PATIENCE)

    assert not checker.violations, checker.violations[:5]
    assert checker.samples > 100
    led = sorted((x.started_at, x.stopped_at, x.identity) for x in candidates if x.started_at)
    assert [who for _, _, who in led] == ["a", "b", "c"]
    for (_, end, who), (start, _, nxt) in itertools.pairwise(led):
        assert end is not None and end <= start, f"{who} still led when {nxt} started"

    found = LeaseLock(api_client=api_client, namespace=namespace, name=LEASE_NAME).get(timeout=10)
    assert found is not None
    record, _ = found
    assert record.holder_identity == ""
    assert record.lease_duration_seconds == 1
    assert record.leader_transitions == 2


def test_lease_lock_compare_and_swap_on_the_api_server(
    api_client: ApiClient, namespace: str
) -> None:
    """The real server enforces the version carried by the merge patch, and keeps labels."""
    lock = LeaseLock(api_client=api_client, namespace=namespace, name="cas-test")
    assert lock.get(timeout=10) is None
    now = datetime.now(UTC).replace(microsecond=123456)
    mine = LeaderElectionRecord(
        holder_identity="me",
        lease_duration_seconds=15,
        acquire_time=now,
        renew_time=now,
        leader_transitions=0,
    )
    created = lock.create(mine, timeout=10)
    with pytest.raises(Conflict):
        lock.create(mine, timeout=10)
    assert lock.get(timeout=10) == (mine, created)

    CoordinationV1Api(api_client).patch_namespaced_lease(
        "cas-test", namespace, {"metadata": {"labels": {"keep": "me"}}}
    )
    with pytest.raises(Conflict):
        lock.update(mine, created, timeout=10)  # stale: the label patch moved the version

    found = lock.get(timeout=10)
    assert found is not None
    theirs = LeaderElectionRecord(
        holder_identity="other",
        lease_duration_seconds=15,
        acquire_time=None,
        renew_time=now,
        leader_transitions=1,
    )
    updated = lock.update(theirs, found[1], timeout=10)
    assert lock.get(timeout=10) == (theirs, updated)
    lease = CoordinationV1Api(api_client).read_namespaced_lease("cas-test", namespace)
    assert lease.metadata is not None
    assert lease.spec is not None
    assert lease.metadata.labels == {"keep": "me"}
    assert lease.spec.acquire_time is None


def test_lease_lock_update_of_a_missing_lease_is_not_found(
    api_client: ApiClient, namespace: str
) -> None:
    lock = LeaseLock(api_client=api_client, namespace=namespace, name="missing")
    record = LeaderElectionRecord(
        holder_identity="me",
        lease_duration_seconds=15,
        acquire_time=None,
        renew_time=None,
        leader_transitions=0,
    )
    with pytest.raises(NotFound):
        lock.update(record, "7", timeout=10)
