"""LeaderElector against an in-memory lock and a fake clock (no cluster, no real waiting).

Each elector runs on its own thread. The test thread only moves the fake clock when every
running elector is blocked in ``clock.wait`` ("settled"), so each step is deterministic, and
it jumps straight to the next deadline, so fake minutes take real milliseconds.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta

import pytest

from leader.clock import FakeClock
from leader.config import LeaderElectionConfig
from leader.elector import LeaderCallbacks, LeaderElector, Outcome
from leader.errors import Conflict, LockError, NotFound
from leader.lease import LeaderElectionRecord

LEASE, RENEW, RETRY = 15.0, 10.0, 2.0
JITTERED_RETRY = RETRY * (1 + 0.5 * 1.2)  # the acquire pause with FixedRandom(0.5)
REAL_TIMEOUT = 5.0  # real seconds any single wait of the test thread may take


class FixedRandom(random.Random):
    """Jitter without surprises: ``random()`` always returns the same value."""

    def __init__(self, value: float) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


class MemoryLock:
    """A Lock in memory with the API server's rules: create fails if it exists, update
    fails unless the version matches. ``fail_with`` makes every call fail; ``before_update``
    runs once at the start of the next update (to let "someone else" win a race)."""

    def __init__(self, clock: FakeClock) -> None:
        self._clock = clock
        self._mutex = threading.Lock()
        self._record: LeaderElectionRecord | None = None  # guarded by _mutex
        self._version = 0  # guarded by _mutex
        self.writes: list[tuple[float, LeaderElectionRecord]] = []  # guarded by _mutex
        self.fail_with: LockError | None = None  # set by the test thread while settled
        self.before_update: Callable[[], None] | None = None  # likewise

    def describe(self) -> str:
        return "memory/lock"

    def put(self, record: LeaderElectionRecord) -> None:
        """Write as another party would (no precondition)."""
        with self._mutex:
            self._record = record
            self._version += 1

    def current(self) -> LeaderElectionRecord | None:
        with self._mutex:
            return self._record

    def get(self, *, timeout: float) -> tuple[LeaderElectionRecord, str] | None:
        assert timeout > 0
        self._maybe_fail()
        with self._mutex:
            return None if self._record is None else (self._record, str(self._version))

    def create(self, record: LeaderElectionRecord, *, timeout: float) -> str:
        assert timeout > 0
        self._maybe_fail()
        with self._mutex:
            if self._record is not None:
                raise Conflict("already exists", status=409)
            return self._store_locked(record)

    def update(self, record: LeaderElectionRecord, resource_version: str, *, timeout: float) -> str:
        assert timeout > 0
        self._maybe_fail()
        hook, self.before_update = self.before_update, None
        if hook is not None:
            hook()
        with self._mutex:
            if self._record is None:
                raise NotFound("not found", status=404)
            if resource_version != str(self._version):
                raise Conflict("the object has been modified", status=409)
            return self._store_locked(record)

    def _maybe_fail(self) -> None:
        if self.fail_with is not None:
            raise self.fail_with

    def _store_locked(self, record: LeaderElectionRecord) -> str:
        self._record = record
        self._version += 1
        self.writes.append((self._clock.now(), record))
        return str(self._version)


@dataclass
class Runner:
    """One elector running on its own thread, with what its callbacks saw."""

    elector: LeaderElector
    thread: threading.Thread = field(init=False)
    stop: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    outcome: Outcome | None = None
    error: BaseException | None = None
    # (callback, argument, fake time); written on the election thread, read when settled
    events: list[tuple[str, str, float]] = field(default_factory=list)
    leading_stop: threading.Event | None = None
    holder_when_stopped: str | None = None

    def names(self) -> list[str]:
        return [f"{name}:{arg}" if arg else name for name, arg, _ in self.events]


class Sim:
    """The fake clock, the shared lock and the electors of one test."""

    def __init__(self) -> None:
        self.clock = FakeClock()
        self.lock = MemoryLock(self.clock)
        self.runners: list[Runner] = []

    def start(self, identity: str = "me", *, release_on_cancel: bool = True) -> Runner:
        config = LeaderElectionConfig(
            lease_name="lock",
            namespace="ns",
            identity=identity,
            lease_duration=LEASE,
            renew_deadline=RENEW,
            retry_period=RETRY,
            release_on_cancel=release_on_cancel,
        )
        runner: Runner

        def started(leading_stop: threading.Event) -> None:
            runner.leading_stop = leading_stop
            runner.events.append(("started", "", self.clock.now()))

        def stopped() -> None:
            current = self.lock.current()
            runner.holder_when_stopped = current.holder_identity if current else None
            runner.events.append(("stopped", "", self.clock.now()))

        def new_leader(who: str) -> None:
            runner.events.append(("new_leader", who, self.clock.now()))

        elector = LeaderElector(
            config=config,
            lock=self.lock,
            callbacks=LeaderCallbacks(
                on_started_leading=started, on_stopped_leading=stopped, on_new_leader=new_leader
            ),
            clock=self.clock,
            rng=FixedRandom(0.5),
        )
        runner = Runner(elector=elector)
        runner.thread = threading.Thread(
            target=self._main, args=(runner,), name=f"test-elector-{identity}"
        )
        self.runners.append(runner)
        runner.thread.start()
        return runner

    @staticmethod
    def _main(runner: Runner) -> None:
        try:
            runner.outcome = runner.elector.run(runner.stop)
        except BaseException as err:
            runner.error = err
        finally:
            runner.done.set()

    def settle(self) -> None:
        """Return once every running elector is blocked on the fake clock (or finished)."""
        deadline = time.monotonic() + REAL_TIMEOUT
        while True:
            active = sum(1 for r in self.runners if not r.done.is_set())
            if self.clock.waiter_count() >= active:
                return
            assert time.monotonic() < deadline, "elector threads did not settle"
            self.clock.block_until_waiters(active, timeout=0.01)

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` of fake time pass, waking every waiter on its deadline."""
        target = self.clock.now() + seconds
        while True:
            self.settle()
            due = self.clock.next_deadline()
            if due is None or due > target:
                self.clock.step_to(target)
                self.settle()
                return
            self.clock.step_to(due)

    def advance_until(self, condition: Callable[[], bool], *, limit: float) -> float:
        """Advance deadline by deadline until ``condition()``; return the fake time it took."""
        begin = self.clock.now()
        while True:
            self.settle()
            if condition():
                return self.clock.now() - begin
            due = self.clock.next_deadline()
            assert due is not None, "nobody waits on the clock and the condition is not met"
            assert due - begin <= limit, f"condition not met within {limit} fake seconds"
            self.clock.step_to(due)

    def join(self, runner: Runner) -> None:
        runner.thread.join(REAL_TIMEOUT)
        assert not runner.thread.is_alive(), f"{runner.thread.name} did not end"

    def close(self) -> None:
        for runner in self.runners:
            runner.stop.set()
        for runner in self.runners:
            self.join(runner)
        errors = [r.error for r in self.runners if r.error is not None]
        if errors:
            raise errors[0]


@pytest.fixture
def sim() -> Iterator[Sim]:
    simulation = Sim()
    try:
        yield simulation
    finally:
        simulation.close()


def other_holder(
    clock: FakeClock, *, transitions: int = 3, holder: str = "other"
) -> LeaderElectionRecord:
    """A record of someone else whose ``renewTime`` is an hour old by the wall clock."""
    long_ago = clock.utcnow() - timedelta(hours=1)
    return LeaderElectionRecord(
        holder_identity=holder,
        lease_duration_seconds=int(LEASE),
        acquire_time=long_ago,
        renew_time=long_ago,
        leader_transitions=transitions,
    )


def test_acquires_when_there_is_no_lease(sim: Sim) -> None:
    me = sim.start()
    sim.settle()
    assert me.elector.is_leader()
    assert me.elector.get_leader() == "me"
    assert me.names() == ["new_leader:me", "started"]
    assert me.leading_stop is not None
    assert not me.leading_stop.is_set()
    record = sim.lock.current()
    assert record == LeaderElectionRecord(
        holder_identity="me",
        lease_duration_seconds=15,
        acquire_time=sim.clock.utcnow(),
        renew_time=sim.clock.utcnow(),
        leader_transitions=0,
    )


def test_valid_lease_of_another_is_respected_even_with_an_old_renew_time(sim: Sim) -> None:
    sim.lock.put(other_holder(sim.clock))
    me = sim.start()
    sim.advance(LEASE - 0.1)
    assert not me.elector.is_leader()
    assert me.elector.get_leader() == "other"
    assert me.names() == ["new_leader:other"]
    current = sim.lock.current()
    assert current is not None
    assert current.holder_identity == "other"


def test_acquires_once_the_lease_expired_on_the_local_clock(sim: Sim) -> None:
    sim.lock.put(other_holder(sim.clock))
    me = sim.start()
    took = sim.advance_until(me.elector.is_leader, limit=60)
    # First seen at t=0, expired from t=15; attempts come every JITTERED_RETRY seconds.
    assert LEASE < took <= LEASE + JITTERED_RETRY
    current = sim.lock.current()
    assert current is not None
    assert current.holder_identity == "me"
    assert current.leader_transitions == 4
    assert me.names() == ["new_leader:other", "new_leader:me", "started"]


def test_a_change_of_the_record_restarts_the_local_expiry(sim: Sim) -> None:
    begin = sim.clock.now()
    sim.lock.put(other_holder(sim.clock))
    me = sim.start()
    sim.advance(10)
    sim.lock.put(other_renewed(sim.clock))
    sim.advance_until(me.elector.is_leader, limit=60)
    # The renewal is seen at the first attempt after t=10 and is valid for LEASE from then.
    took = sim.clock.now() - begin
    assert 10 + LEASE < took <= 10 + JITTERED_RETRY + LEASE + JITTERED_RETRY


def other_renewed(clock: FakeClock) -> LeaderElectionRecord:
    """``other_holder`` renewed just now."""
    now = clock.utcnow()
    return LeaderElectionRecord(
        holder_identity="other",
        lease_duration_seconds=int(LEASE),
        acquire_time=now - timedelta(hours=1),
        renew_time=now,
        leader_transitions=3,
    )


def test_renewals_keep_the_leadership(sim: Sim) -> None:
    me = sim.start()
    sim.settle()
    acquired = sim.lock.current()
    assert acquired is not None
    sim.advance(60)
    assert me.elector.is_leader()
    assert me.names() == ["new_leader:me", "started"]
    assert len(sim.lock.writes) == 1 + int(60 / RETRY)
    current = sim.lock.current()
    assert current is not None
    assert current.holder_identity == "me"
    assert current.acquire_time == acquired.acquire_time
    assert current.renew_time == sim.clock.utcnow()
    assert current.leader_transitions == 0


def test_failing_renewals_lose_the_leadership_at_the_renew_deadline(sim: Sim) -> None:
    me = sim.start()
    sim.advance(5)
    last_renewed = sim.lock.writes[-1][0]
    sim.lock.fail_with = LockError("connection refused")
    sim.advance_until(me.done.is_set, limit=30)
    assert me.outcome is Outcome.LOST
    assert me.names() == ["new_leader:me", "started", "stopped"]
    stopped_at = me.events[-1][2]
    assert stopped_at == pytest.approx(last_renewed + RENEW)
    assert me.leading_stop is not None
    assert me.leading_stop.is_set()
    assert not me.elector.is_leader()
    assert me.holder_when_stopped == "me"  # no release after a loss


def test_a_takeover_seen_while_renewing_loses_the_leadership_at_once(sim: Sim) -> None:
    me = sim.start()
    sim.advance(3)
    sim.lock.put(other_renewed(sim.clock))
    took = sim.advance_until(me.done.is_set, limit=30)
    assert took <= RETRY
    assert me.outcome is Outcome.LOST
    assert me.names() == ["new_leader:me", "started", "new_leader:other", "stopped"]
    assert me.elector.get_leader() == "other"


def test_a_conflict_on_update_means_not_leader(sim: Sim) -> None:
    sim.lock.put(other_holder(sim.clock, holder=""))  # free: released by its last holder
    sim.lock.before_update = lambda: sim.lock.put(other_renewed(sim.clock))  # someone wins
    me = sim.start()
    sim.advance(LEASE - 1)
    assert not me.elector.is_leader()
    assert me.elector.get_leader() == "other"
    assert "started" not in me.names()
    current = sim.lock.current()
    assert current is not None
    assert current.holder_identity == "other"


def test_a_clean_stop_releases_the_lease_after_stopped_leading(sim: Sim) -> None:
    me = sim.start()
    sim.advance(3)
    me.stop.set()
    sim.join(me)
    assert me.outcome is Outcome.STOPPED
    assert me.names() == ["new_leader:me", "started", "stopped"]
    assert me.holder_when_stopped == "me"  # the work stops before the lease is given up
    assert not me.elector.is_leader()
    current = sim.lock.current()
    assert current is not None
    assert current.holder_identity == ""
    assert current.lease_duration_seconds == 1
    assert current.leader_transitions == 0


def test_a_clean_stop_without_release_on_cancel_keeps_the_holder(sim: Sim) -> None:
    me = sim.start(release_on_cancel=False)
    sim.advance(3)
    me.stop.set()
    sim.join(me)
    assert me.outcome is Outcome.STOPPED
    current = sim.lock.current()
    assert current is not None
    assert current.holder_identity == "me"


def test_a_stop_while_following_returns_without_leading(sim: Sim) -> None:
    theirs = other_renewed(sim.clock)
    sim.lock.put(theirs)
    me = sim.start()
    sim.advance(5)
    me.stop.set()
    sim.join(me)
    assert me.outcome is Outcome.STOPPED
    assert me.names() == ["new_leader:other"]
    assert sim.lock.current() == theirs
    assert sim.lock.writes == []


def test_leader_transitions_are_counted_and_a_release_lets_a_follower_in(sim: Sim) -> None:
    a = sim.start("a")
    sim.settle()
    b = sim.start("b")
    sim.advance(5)
    assert a.elector.is_leader()
    assert not b.elector.is_leader()
    assert b.names() == ["new_leader:a"]

    a.stop.set()
    sim.join(a)
    took = sim.advance_until(b.elector.is_leader, limit=60)
    assert took <= JITTERED_RETRY  # at b's next attempt, not after a lease duration
    current = sim.lock.current()
    assert current is not None
    assert (current.holder_identity, current.leader_transitions) == ("b", 1)

    c = sim.start("c")
    sim.advance(5)
    b.stop.set()
    sim.join(b)
    sim.advance_until(c.elector.is_leader, limit=60)
    current = sim.lock.current()
    assert current is not None
    assert (current.holder_identity, current.leader_transitions) == ("c", 2)


def test_run_may_be_called_only_once() -> None:
    clock = FakeClock()
    elector = LeaderElector(
        config=LeaderElectionConfig(lease_name="lock", namespace="ns", identity="me"),
        lock=MemoryLock(clock),
        callbacks=LeaderCallbacks(
            on_started_leading=lambda _: None, on_stopped_leading=lambda: None
        ),
        clock=clock,
    )
    stop = threading.Event()
    stop.set()
    assert elector.run(stop) is Outcome.STOPPED
    with pytest.raises(RuntimeError, match="only once"):
        elector.run(stop)


def test_an_error_in_a_callback_propagates_after_stepping_down() -> None:
    clock = FakeClock()
    lock = MemoryLock(clock)
    stopped: list[bool] = []

    def explode(_: threading.Event) -> None:
        raise RuntimeError("cannot start")

    elector = LeaderElector(
        config=LeaderElectionConfig(lease_name="lock", namespace="ns", identity="me"),
        lock=lock,
        callbacks=LeaderCallbacks(
            on_started_leading=explode, on_stopped_leading=lambda: stopped.append(True)
        ),
        clock=clock,
    )
    with pytest.raises(RuntimeError, match="cannot start"):
        elector.run(threading.Event())
    assert stopped == [True]
    assert not elector.is_leader()
    current = lock.current()
    assert current is not None
    assert current.holder_identity == "me"  # not released: the caller exits non-zero
