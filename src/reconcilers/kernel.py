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
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Protocol

from cachetools import TTLCache

from reconcilers.apply import Applier
from reconcilers.desired import Observed, desired_state
from reconcilers.model import Fresh, Obj, ReconcileSettings, meta
from reconcilers.outcome import DONE, Result

REISSUE_MEMORY_SECONDS = 2 * 3600.0
INVOLVED_INDEX = "involved-object"


class Lookup(Protocol):
    """Read access to one cache by ``namespace/name`` key."""

    def get(self, key: str) -> Obj | None: ...


class IndexedLookup(Lookup, Protocol):
    def by_index(self, index_name: str, value: str) -> Sequence[Obj]: ...


def involved_object_index(event: Obj) -> list[str]:
    """Index function for Events: ``namespace/name`` of the object they are about."""
    involved = event.get("involvedObject") or {}
    namespace = involved.get("namespace") or meta(event).get("namespace") or ""
    name = involved.get("name") or ""
    return [f"{namespace}/{name}"] if name else []


def new_fresh() -> Fresh:
    """Fresh random identity material: a UUID4 and a 256-bit key (hex)."""
    return Fresh(kernel_id=str(uuid.uuid4()), key=secrets.token_hex(32))


class ReissueLog:
    """Which Pod Warning Events were already re-issued on their Kernel (in memory, bounded)."""

    def __init__(self, *, ttl: float = REISSUE_MEMORY_SECONDS) -> None:
        self._lock = threading.Lock()
        # guarded by _lock
        self._done: TTLCache[tuple[str, int], bool] = TTLCache(
            maxsize=100_000, ttl=ttl, timer=time.monotonic
        )

    @staticmethod
    def _key(event: Obj) -> tuple[str, int]:
        return str(meta(event).get("uid", "")), int(event.get("count") or 1)

    def mark(self, event: Obj) -> None:
        with self._lock:
            self._done[self._key(event)] = True

    def is_done(self, event: Obj) -> bool:
        with self._lock:
            return self._key(event) in self._done


class KernelReconciler:
    """Brings one Kernel's children and status in line with its spec."""

    def __init__(
        self,
        *,
        kernels: Lookup,
        pods: Lookup,
        services: Lookup,
        warnings: IndexedLookup | None,
        applier: Applier,
        settings: ReconcileSettings,
        reissued: ReissueLog,
        fresh: Callable[[], Fresh] = new_fresh,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._kernels = kernels
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
        pod = self._pods.get(key)
        observed = Observed(
            pod=pod,
            service=self._services.get(key),
            pod_warnings=self._pending_warnings(key, pod),
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
