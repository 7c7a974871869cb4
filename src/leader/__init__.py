"""Generic leader election on a ``coordination.k8s.io/v1`` Lease (after client-go's
``tools/leaderelection``). It knows nothing about what the leader does.

Public names: :class:`LeaderElectionConfig` (validated timings), :class:`LeaseLock` (the
Lease as a :class:`Lock`), :class:`LeaderElector` with :class:`LeaderCallbacks` and the
:class:`Outcome` its ``run(stop)`` returns (``Outcome.LOST`` means: exit non-zero), the
clocks, and the :class:`LockError` family. Module contracts and threads are documented in
``elector.py``, ``lease.py`` and ``clock.py``. Importing this package does no work.
"""

from leader.clock import Clock, FakeClock, RealClock
from leader.config import LeaderElectionConfig
from leader.elector import LeaderCallbacks, LeaderElector, Outcome
from leader.errors import Conflict, Forbidden, LockError, NotFound
from leader.lease import LeaderElectionRecord, LeaseLock, Lock

__all__ = [
    "Clock",
    "Conflict",
    "FakeClock",
    "Forbidden",
    "LeaderCallbacks",
    "LeaderElectionConfig",
    "LeaderElectionRecord",
    "LeaderElector",
    "LeaseLock",
    "Lock",
    "LockError",
    "NotFound",
    "Outcome",
    "RealClock",
]
