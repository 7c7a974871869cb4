"""Reconcile one Kernel key from the caches: read, compute the desired state, apply.

``KernelReconciler.reconcile(key)`` is idempotent and safe to run twice; it reads only from the
informers' caches and returns a :class:`~reconcilers.outcome.Result` or raises
``TransientError``/``TerminalError``. It never sleeps. Runs on worker threads (the work queue
guarantees one worker per key at a time).
"""

from __future__ import annotations

import secrets
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Protocol

from cachetools import TTLCache

from reconcilers.desired import Desired, Observed, desired_state
from reconcilers.model import (
    KERNEL_ID_ANNOTATION,
    NAME_LABEL,
    Fresh,
    Obj,
    ReconcileSettings,
    controlled_by,
    meta,
    pool_of,
    pool_ref,
)
from reconcilers.outcome import DONE, Result
from reconcilers.pooled import activation_of, idle_candidates, with_activation

REISSUE_MEMORY_SECONDS = 2 * 3600.0
INVOLVED_INDEX = "involved-object"
KERNEL_POD_INDEX = "kernel-name"
POOL_INDEX = "kernel-pool"


class Lookup(Protocol):
    """Read access to one cache by ``namespace/name`` key."""

    def get(self, key: str) -> Obj | None: ...


class IndexedLookup(Lookup, Protocol):
    def by_index(self, index_name: str, value: str) -> Sequence[Obj]: ...


class Applies(Protocol):
    """What the reconciler needs of :class:`reconcilers.apply.Applier`."""

    def awaiting(self, key: str) -> frozenset[str]: ...

    def apply(self, kernel: Obj, desired: Desired, observed: Observed) -> Result: ...


def involved_object_index(event: Obj) -> list[str]:
    """Index function for Events: ``namespace/name`` of the object they are about."""
    involved = event.get("involvedObject") or {}
    namespace = involved.get("namespace") or meta(event).get("namespace") or ""
    name = involved.get("name") or ""
    return [f"{namespace}/{name}"] if name else []


def kernel_pod_index(pod: Obj) -> list[str]:
    """Index function for Pods: ``namespace/name`` of the Kernel they are labelled for (a
    Pod claimed from a pool has its own name, not the Kernel's)."""
    m = meta(pod)
    name = (m.get("labels") or {}).get(NAME_LABEL)
    return [f"{m.get('namespace', '')}/{name}"] if name else []


def pool_index(pod: Obj) -> list[str]:
    """Index function for Pods: ``namespace/pool`` of the warm pool that started them."""
    m = meta(pod)
    name = pool_of(pod)
    return [f"{m.get('namespace', '')}/{name}"] if name else []


def choose_pod(
    kernel: Obj,
    named: Obj | None,
    labelled: Sequence[Obj],
    recorded: Callable[[Obj], str | None] = lambda pod: None,
) -> tuple[Obj | None, tuple[Obj, ...]]:
    """The Kernel's Pod, and the surplus ones it controls (to delete).

    ``named`` is the Pod named like the Kernel (its own cold Pod, or a stranger's: then it is
    returned as is, for the name conflict to be reported); ``labelled`` are the Pods labelled
    for it. Of those it controls, one not being deleted wins over one being deleted, a
    running kernel (cold, or activated for it) over a claimed one still to activate, then
    the oldest. Two can exist only after a claim raced a failover; the others are surplus.
    ``recorded`` gives the activations this process made that the caches may not show yet.
    """
    if named is not None and not controlled_by(named, kernel):
        return named, ()
    owned = {str(meta(p).get("uid")): p for p in labelled if controlled_by(p, kernel)}
    if named is not None:
        owned[str(meta(named).get("uid"))] = named
    if not owned:
        return None, ()
    kernel_id = (meta(kernel).get("annotations") or {}).get(KERNEL_ID_ANNOTATION)

    def rank(pod: Obj) -> tuple[bool, bool, str, str]:
        m = meta(pod)
        running = pool_of(pod) is None or activation_of(pod, kernel, recorded(pod)) == kernel_id
        return (
            bool(m.get("deletionTimestamp")),
            not running,
            str(m.get("creationTimestamp") or ""),
            str(m.get("name") or ""),
        )

    ranked = sorted(owned.values(), key=rank)
    surplus = tuple(p for p in ranked[1:] if not meta(p).get("deletionTimestamp"))
    return ranked[0], surplus


def spread(candidates: Sequence[Obj], kernel: Obj) -> tuple[Obj, ...]:
    """``candidates`` rotated by a hash of the Kernel's uid: Kernels created together try
    different standby Pods first instead of all racing for the oldest."""
    if not candidates:
        return ()
    start = zlib.crc32(str(meta(kernel).get("uid", "")).encode()) % len(candidates)
    return (*candidates[start:], *candidates[:start])


def new_fresh() -> Fresh:
    """Fresh random identity material: a UUID4 and a 256-bit key (hex)."""
    return Fresh(kernel_id=str(uuid.uuid4()), key=secrets.token_hex(32))


class ReissueLog:
    """How far each Pod Warning Event was re-issued on its Kernel: the Event's ``count`` at
    the last re-issue (in memory, bounded)."""

    def __init__(self, *, ttl: float = REISSUE_MEMORY_SECONDS) -> None:
        self._lock = threading.Lock()
        # Event uid -> its count when last re-issued; guarded by _lock
        self._done: TTLCache[str, int] = TTLCache(maxsize=100_000, ttl=ttl, timer=time.monotonic)

    @staticmethod
    def _count(event: Obj) -> int:
        return int(event.get("count") or 1)

    def mark(self, event: Obj) -> None:
        uid = str(meta(event).get("uid", ""))
        with self._lock:
            self._done[uid] = max(self._done.get(uid, 0), self._count(event))

    def is_done(self, event: Obj) -> bool:
        return self.new_occurrences(event) == 0

    def new_occurrences(self, event: Obj) -> int:
        """Occurrences of ``event`` not re-issued yet: its count since the last re-issue (the
        cache may show several repeats at once; they are counted, not lost)."""
        with self._lock:
            done = self._done.get(str(meta(event).get("uid", "")), 0)
        return max(0, self._count(event) - done)


class KernelReconciler:
    """Brings one Kernel's children and status in line with its spec."""

    def __init__(
        self,
        *,
        kernels: Lookup,
        pods: IndexedLookup,
        services: Lookup,
        warnings: IndexedLookup | None,
        applier: Applies,
        settings: ReconcileSettings,
        reissued: ReissueLog,
        fresh: Callable[[], Fresh] = new_fresh,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        pools: Lookup | None = None,
        pool_pods: IndexedLookup | None = None,
        activations: Callable[[Obj], str | None] | None = None,
    ) -> None:
        self._activations = activations
        self._kernels = kernels
        self._pools = pools
        self._pool_pods = pool_pods
        self._pods = pods
        self._services = services
        self._warnings = warnings
        self._applier = applier
        self._settings = settings
        self._reissued = reissued
        self._fresh = fresh
        self._wall_clock = wall_clock

    def reconcile(self, key: str) -> Result:
        kernel = self._kernels.get(key)
        if kernel is None or meta(kernel).get("deletionTimestamp"):
            return DONE  # gone or going: the garbage collector removes the children
        awaiting = self._applier.awaiting(key)  # before the cache reads: see Observed.awaiting
        recorded = self._activations or (lambda pod: None)
        pod, surplus = choose_pod(
            kernel, self._pods.get(key), self._pods.by_index(KERNEL_POD_INDEX, key), recorded
        )
        if pod is not None and pool_of(pod) is not None:
            activated = activation_of(pod, kernel, recorded(pod))
            if activated:
                pod = with_activation(pod, activated)  # the view desired_state reads
        pool = standby = None
        pool_name = pool_ref(kernel)
        if pool_name is not None and self._pools is not None:
            pool_key = f"{meta(kernel).get('namespace', '')}/{pool_name}"
            pool = self._pools.get(pool_key)
            if pool is not None and pod is None and self._pool_pods is not None:
                pods = self._pool_pods.by_index(POOL_INDEX, pool_key)
                standby = spread(idle_candidates(pool, pods), kernel)
        observed = Observed(
            pod=pod,
            service=self._services.get(key),
            pod_warnings=self._pending_warnings(key, pod),
            pool=pool,
            standby=standby or (),
            surplus_pods=surplus,
            awaiting=awaiting,
        )
        desired = desired_state(
            kernel=kernel,
            observed=observed,
            settings=self._settings,
            fresh=self._fresh(),
            now=self._wall_clock(),
        )
        return self._applier.apply(kernel, desired, observed)

    def _pending_warnings(self, key: str, pod: Obj | None) -> tuple[Obj, ...]:
        if self._warnings is None or pod is None:
            return ()
        pod_uid = meta(pod).get("uid")
        return tuple(
            event
            for event in self._warnings.by_index(INVOLVED_INDEX, key)
            if (event.get("involvedObject") or {}).get("uid") in (None, "", pod_uid)
            and not self._reissued.is_done(event)
        )
