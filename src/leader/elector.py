"""Leader election on a :class:`~leader.lease.Lock` (after client-go ``tools/leaderelection``).

Contract:

- At most one elector holds the lock at a time *as far as the lock's compare-and-swap can tell*.
  There is no fencing: a leader that is paused or partitioned may act for up to
  ``renew_deadline`` (plus one request) after its last renewal, so the work done while leading
  must be idempotent.
- Someone else's lease is judged on the LOCAL monotonic clock, never on the holder's
  ``renewTime``: we remember when we last saw the record change (``observed_at``) and consider
  the lease expired once ``observed_at + leaseDurationSeconds <= now``, with the duration the
  holder wrote into the record (as client-go does; after a release it is 1 s and the holder
  is empty, so followers take over at their next attempt).
- Acquire attempts are spaced ``retry_period * (1 + random() * 1.2)`` apart (client-go's
  ``JitterUntil``). Once leading, the lease is renewed every ``retry_period``; when no renewal
  has succeeded for ``renew_deadline`` seconds, or another holder is seen, leadership is lost.
- Loss: :meth:`LeaderElector.run` sets the leading event, calls ``on_stopped_leading`` at once
  and returns :attr:`Outcome.LOST`; it does not release the lease. The caller must stop its
  work and exit non-zero.
- Clean stop (the ``stop`` event set): while following, ``run`` returns
  :attr:`Outcome.STOPPED`. While leading, it sets the leading event, calls
  ``on_stopped_leading`` (so the work winds down before another replica may start), then,
  with ``release_on_cancel``, hands the lease back (empty holder, 1 s duration) and returns
  :attr:`Outcome.STOPPED`. The ``stop`` event is checked between lock calls, so a stop takes
  at most one request timeout to be noticed.
- An exception raised by a callback propagates out of ``run`` after stepping down
  (``on_stopped_leading`` is still called if ``on_started_leading`` was), without a release.

Threads: ``run`` executes on the caller's thread (the *election thread*); every lock call and
every callback runs there, so callbacks must return promptly: ``on_started_leading`` starts
the work (on threads of its own, which stop when the event passed to it is set) and returns.
:meth:`LeaderElector.is_leader` and :meth:`LeaderElector.get_leader` may be called from any
thread. Waits go through the injected clock and end as soon as ``stop`` is set.
"""

from __future__ import annotations

import enum
import logging
import math
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace

from leader.clock import Clock, RealClock
from leader.config import JITTER_FACTOR, LeaderElectionConfig
from leader.errors import Conflict, LockError
from leader.lease import LeaderElectionRecord, Lock

_log = logging.getLogger("leader")

RELEASED_LEASE_SECONDS = 1
"""``leaseDurationSeconds`` written on release, as client-go does."""


class Outcome(enum.Enum):
    """How :meth:`LeaderElector.run` ended."""

    STOPPED = "stopped"
    """The ``stop`` event was set; the lease was released if we held it (and were asked to)."""
    LOST = "lost"
    """Leadership was lost; stop all work and exit non-zero."""


def _ignore_new_leader(identity: str) -> None:
    """The default ``on_new_leader``: nothing to do."""


@dataclass(frozen=True, kw_only=True)
class LeaderCallbacks:
    """What the elector calls, always on the election thread (see the module docstring).

    ``on_started_leading(leading_stop)``: we became leader; ``leading_stop`` is set when the
    leadership ends, for any reason. ``on_stopped_leading()``: leadership ended; called only
    after ``on_started_leading``. ``on_new_leader(identity)``: the observed holder changed to a
    non-empty ``identity`` (ours included).
    """

    on_started_leading: Callable[[threading.Event], None]
    on_stopped_leading: Callable[[], None]
    on_new_leader: Callable[[str], None] = _ignore_new_leader


@dataclass(frozen=True)
class _Observation:
    """The last record we read or wrote, its version, and when (local monotonic) it changed."""

    record: LeaderElectionRecord
    resource_version: str
    observed_at: float


class LeaderElector:
    """Campaigns for one lock and keeps it; one :meth:`run` per instance.

    Invariant: ``_leading`` is true exactly between the calls of ``on_started_leading`` and
    ``on_stopped_leading``.
    """

    def __init__(
        self,
        *,
        config: LeaderElectionConfig,
        lock: Lock,
        callbacks: LeaderCallbacks,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._config = config
        self._lock = lock
        self._callbacks = callbacks
        self._clock: Clock = clock if clock is not None else RealClock()
        self._rng = rng if rng is not None else random.Random()
        # Whole seconds on the wire; rounding up only makes followers more patient.
        self._lease_seconds = max(1, math.ceil(config.lease_duration))
        self._leading_stop = threading.Event()

        self._mutex = threading.Lock()
        self._observed: _Observation | None = None  # guarded by _mutex
        self._leading = False  # guarded by _mutex
        self._ran = False  # guarded by _mutex

        self._renewed_at = 0.0  # election thread only: start of the last successful write
        self._reported_leader = ""  # election thread only

    # -- public API (any thread) ---------------------------------------------------------------

    def is_leader(self) -> bool:
        """Whether we are leading now (between ``on_started_leading`` and its end)."""
        with self._mutex:
            return self._leading

    def get_leader(self) -> str:
        """The holder identity last observed on the lock; ``""`` if none is known or it is free."""
        with self._mutex:
            return self._observed.record.holder_identity if self._observed else ""

    def run(self, stop: threading.Event) -> Outcome:
        """Acquire, lead and renew until ``stop`` is set or leadership is lost; see module doc."""
        with self._mutex:
            if self._ran:
                raise RuntimeError("LeaderElector.run() may be called only once")
            self._ran = True
        desc = self._lock.describe()
        _log.info("%s: attempting to acquire leader lease %s", self._config.identity, desc)
        if not self._acquire(stop):
            _log.info("%s: stopped before acquiring lease %s", self._config.identity, desc)
            return Outcome.STOPPED
        _log.info("%s: successfully acquired lease %s", self._config.identity, desc)
        if stop.is_set():  # stopped while the winning attempt was in flight
            self._release_if_configured()
            return Outcome.STOPPED

        try:
            with self._mutex:
                self._leading = True
            self._callbacks.on_started_leading(self._leading_stop)
            outcome = self._renew(stop)
        finally:
            self._step_down()
        if outcome is Outcome.STOPPED:
            self._release_if_configured()
        return outcome

    # -- election thread -----------------------------------------------------------------------

    def _acquire(self, stop: threading.Event) -> bool:
        """Try until we hold the lock (``True``) or ``stop`` is set (``False``)."""
        retry = self._config.retry_period
        while not stop.is_set():
            acquired = self._try_acquire_or_renew(timeout=self._config.renew_deadline)
            self._maybe_report_new_leader()
            if acquired:
                return True
            pause = retry * (1.0 + self._rng.random() * JITTER_FACTOR)
            if self._clock.wait(stop, pause):
                break
        return False

    def _renew(self, stop: threading.Event) -> Outcome:
        """Renew every ``retry_period`` until ``stop`` (STOPPED) or a failed deadline (LOST)."""
        cfg = self._config
        desc = self._lock.describe()
        pause = cfg.retry_period
        while True:
            if self._clock.wait(stop, pause):
                return Outcome.STOPPED
            remaining = self._renewed_at + cfg.renew_deadline - self._clock.now()
            if remaining > 0:
                if self._try_acquire_or_renew(timeout=remaining):
                    self._maybe_report_new_leader()
                    _log.debug("%s: renewed lease %s", cfg.identity, desc)
                    pause = cfg.retry_period
                    continue
                self._maybe_report_new_leader()
                holder = self.get_leader()
                if holder and holder != cfg.identity:
                    _log.warning(
                        "%s: lease %s is now held by %r; leadership lost",
                        cfg.identity,
                        desc,
                        holder,
                    )
                    return Outcome.LOST
                remaining = self._renewed_at + cfg.renew_deadline - self._clock.now()
            if remaining <= 0:
                _log.error(
                    "%s: failed to renew lease %s within the renew deadline (%gs); leadership lost",
                    cfg.identity,
                    desc,
                    cfg.renew_deadline,
                )
                return Outcome.LOST
            pause = min(cfg.retry_period, remaining)

    def _try_acquire_or_renew(self, *, timeout: float) -> bool:
        """One attempt to take or keep the lock; ``True`` when we hold it afterwards."""
        me = self._config.identity
        started = self._clock.now()
        deadline = started + timeout
        wall = self._clock.utcnow()
        fresh = LeaderElectionRecord(
            holder_identity=me,
            lease_duration_seconds=self._lease_seconds,
            acquire_time=wall,
            renew_time=wall,
            leader_transitions=0,
        )

        # 1. Fast path: we hold it and our own view of it is still valid.
        observed = self._observation()
        if (
            observed is not None
            and observed.record.holder_identity == me
            and self._is_valid(observed, started)
        ):
            desired = replace(
                fresh,
                acquire_time=observed.record.acquire_time,
                leader_transitions=observed.record.leader_transitions,
            )
            if self._write(desired, observed.resource_version, deadline=deadline, started=started):
                return True

        # 2. Read the lock, or create it.
        try:
            current = self._lock.get(timeout=self._left(deadline))
        except LockError as err:
            _log.warning("%s: error reading lease %s: %s", me, self._lock.describe(), err)
            return False
        if current is None:
            return self._write(fresh, None, deadline=deadline, started=started)

        # 3. Remember when the record last changed; respect a valid lease of someone else.
        record, version = current
        observed = self._observe(record, version)
        holder = record.holder_identity
        if holder and holder != me and self._is_valid(observed, self._clock.now()):
            _log.debug("%s: lease %s is held by %r", me, self._lock.describe(), holder)
            return False

        # 4. Take it over (or keep it), guarded by the version we just read.
        if holder == me:
            desired = replace(
                fresh,
                acquire_time=record.acquire_time,
                leader_transitions=record.leader_transitions,
            )
        else:
            desired = replace(fresh, leader_transitions=record.leader_transitions + 1)
        return self._write(desired, version, deadline=deadline, started=started)

    def _write(
        self,
        record: LeaderElectionRecord,
        version: str | None,
        *,
        deadline: float,
        started: float,
    ) -> bool:
        """Create (``version`` None) or update the lock to hold ``record``; ``True`` if done."""
        me = self._config.identity
        desc = self._lock.describe()
        try:
            if version is None:
                new_version = self._lock.create(record, timeout=self._left(deadline))
            else:
                new_version = self._lock.update(record, version, timeout=self._left(deadline))
        except Conflict as err:
            _log.info("%s: someone else changed lease %s first: %s", me, desc, err)
            return False
        except LockError as err:
            _log.warning("%s: error writing lease %s: %s", me, desc, err)
            return False
        # Dated from the start of the attempt: the cautious end for our own expiry.
        with self._mutex:
            self._observed = _Observation(record, new_version, started)
        self._renewed_at = started
        return True

    def _release_if_configured(self) -> None:
        if self._config.release_on_cancel:
            self._release()

    def _release(self) -> bool:
        """Hand the lease back if we still hold it: empty holder, 1 s duration."""
        me = self._config.identity
        desc = self._lock.describe()
        deadline = self._clock.now() + self._config.renew_deadline
        try:
            current = self._lock.get(timeout=self._left(deadline))
        except LockError as err:
            _log.error("%s: could not read lease %s to release it: %s", me, desc, err)
            return False
        if current is None:
            return True
        record, version = current
        self._observe(record, version)
        if record.holder_identity != me:
            _log.info(
                "%s: lease %s is held by %r; nothing to release", me, desc, record.holder_identity
            )
            return True
        wall = self._clock.utcnow()
        released = LeaderElectionRecord(
            holder_identity="",
            lease_duration_seconds=RELEASED_LEASE_SECONDS,
            acquire_time=wall,
            renew_time=wall,
            leader_transitions=record.leader_transitions,
        )
        try:
            version = self._lock.update(released, version, timeout=self._left(deadline))
        except LockError as err:
            _log.error("%s: failed to release lease %s: %s", me, desc, err)
            return False
        self._observe(released, version)
        _log.info("%s: released lease %s", me, desc)
        return True

    def _step_down(self) -> None:
        """End leadership once: set the leading event, then call ``on_stopped_leading``."""
        with self._mutex:
            was_leading = self._leading
            self._leading = False
        if was_leading:
            self._leading_stop.set()
            _log.info("%s: stopped leading", self._config.identity)
            self._callbacks.on_stopped_leading()

    def _maybe_report_new_leader(self) -> None:
        holder = self.get_leader()
        if holder and holder != self._reported_leader:
            self._reported_leader = holder
            _log.info("%s: new leader is %s", self._config.identity, holder)
            self._callbacks.on_new_leader(holder)

    # -- observed state ------------------------------------------------------------------------

    def _observation(self) -> _Observation | None:
        with self._mutex:
            return self._observed

    def _observe(self, record: LeaderElectionRecord, version: str) -> _Observation:
        """Store what we read; ``observed_at`` moves only when the record itself changed."""
        now = self._clock.now()
        with self._mutex:
            previous = self._observed
            if previous is not None and previous.record == record:
                now = previous.observed_at
            self._observed = _Observation(record, version, now)
            return self._observed

    @staticmethod
    def _is_valid(observed: _Observation, now: float) -> bool:
        return observed.observed_at + observed.record.lease_duration_seconds > now

    def _left(self, deadline: float) -> float:
        """Seconds left until ``deadline`` for one lock call (never zero: it means no timeout)."""
        return max(deadline - self._clock.now(), 0.001)
