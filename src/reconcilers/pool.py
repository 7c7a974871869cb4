"""Keeping a warm pool full (SPEC §13): the KernelPool reconciler.

``PoolReconciler.reconcile("namespace/pool")`` reads the pool and its Pods from the caches and
makes the number of *idle* standby Pods (the pool's own, unclaimed, not exited, not being
deleted) equal ``spec.replicas``:

- too few: create standby Pods (:func:`reconcilers.pooled.build_standby_pod`), each followed by
  its activation-token Secret (owned by the Pod, so it goes with it). Creates go in slow-start
  batches (1, 2, 4, ... as a ReplicaSet does) and stop at the first error;
- too many: delete surplus idle Pods, those not Ready first, then the newest. Only standby
  Pods are ever deleted, each with a ``resourceVersion`` precondition: a Pod claimed
  meanwhile (its version changed) is left alone, and of a claim and a scale-down racing for
  one Pod exactly one wins;
- exited standby Pods (a kernel that could not start) are deleted and replaced with an
  exponential backoff per pool (1 s doubling to 5 min, reset once a standby Pod is Ready),
  one at a time while failures persist, and reported by a ``StandbyFailed`` Event on the pool:
  a template that never starts costs one Pod per backoff period, never a create storm.

Claimed Pods (labelled ``jupyter.org/kernel-name`` and owned by their Kernel) keep the pool's
label: they are counted in ``status.claimed`` and never touched here. Standby Pods created but
not yet in the cache, and deletions not yet seen, are remembered (for at most
``IN_FLIGHT_TTL_SECONDS``) so that a pass running before the informer catches up neither
creates nor deletes twice.

Status (merge patch of the status subresource, only when it differs): ``replicas`` (idle),
``readyReplicas`` (idle and Ready), ``claimed``, ``selector`` (the idle Pods, for the scale
subresource), ``observedGeneration`` and a ``Ready`` condition. A new ``claimed`` count is
written at once, unless one was written less than ``CLAIMS_STATUS_INTERVAL_SECONDS`` ago: then
at the end of that interval, with whatever else changed meanwhile. A burst of claims costs two
status writes, not one per claim, and a single claim shows at once.

Without an activation key (see the manager) no standby Pod is created: it could never be
activated. Runs on the pool workers; ``reconcile`` never sleeps.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cachetools import TTLCache

from informers import ApiError, Conflict, NotFound, ResourceClient
from reconcilers.events import EventRecorder
from reconcilers.kernel import POOL_INDEX, IndexedLookup, Lookup
from reconcilers.model import (
    FIELD_MANAGER,
    NAME_LABEL,
    POOL_KIND,
    POOL_LABEL,
    Obj,
    ReconcileSettings,
    meta,
)
from reconcilers.outcome import DONE, Result, TransientError
from reconcilers.pooled import (
    build_activation_secret,
    build_standby_pod,
    controlled_by_pool,
    is_standby,
    is_terminal,
    pod_ready,
    standby_pod_name,
)
from reconcilers.status import failure_message, merge_patch

log = logging.getLogger(__name__)

IN_FLIGHT_TTL_SECONDS = 30.0
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 300.0
ACTIVATION_HOLD_SECONDS = 10.0  # the refill waits at most this for a claim's activation
CLAIM_QUIET_SECONDS = 1.0  # and this long after a claim was first seen
CLAIMS_STATUS_INTERVAL_SECONDS = 0.5  # a new claimed count is written at most this often

TokenFor = Callable[[str, str], str]
"""``(namespace, pod name) -> activation token``."""


def standby_selector(pool_name: str) -> str:
    """The label selector of a pool's idle Pods (``status.selector``, for the scale API)."""
    return f"{POOL_LABEL}={pool_name},!{NAME_LABEL}"


class StandbyBackoff:
    """Per pool: how many standby Pods failed in a row, and when the next create may go.

    A failure is counted once per Pod uid; a Ready standby Pod resets the pool. Thread-safe.
    """

    def __init__(
        self,
        *,
        base: float = BACKOFF_BASE_SECONDS,
        cap: float = BACKOFF_MAX_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._base, self._cap = base, cap
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._failures: dict[str, int] = {}  # guarded by _lock
        self._not_before: dict[str, float] = {}  # guarded by _lock
        self._seen: TTLCache[str, bool] = TTLCache(  # guarded by _lock; failed Pod uids
            maxsize=100_000, ttl=2 * cap, timer=monotonic
        )

    def failed(self, pool: str, pod_uid: str) -> float | None:
        """Count the failure of ``pod_uid`` (once); the delay it starts, None if counted."""
        with self._lock:
            if pod_uid in self._seen:
                return None
            self._seen[pod_uid] = True
            n = self._failures.get(pool, 0) + 1
            self._failures[pool] = n
            delay: float = min(self._cap, self._base * 2.0 ** (n - 1))
            self._not_before[pool] = self._monotonic() + delay
            return delay

    def succeeded(self, pool: str) -> None:
        with self._lock:
            self._failures.pop(pool, None)
            self._not_before.pop(pool, None)

    def failures(self, pool: str) -> int:
        with self._lock:
            return self._failures.get(pool, 0)

    def wait(self, pool: str) -> float:
        """Seconds before a standby Pod may be created for ``pool`` (0: now)."""
        with self._lock:
            not_before = self._not_before.get(pool)
        return 0.0 if not_before is None else max(0.0, not_before - self._monotonic())

    def forget(self, pool: str) -> None:
        self.succeeded(pool)


class InFlight:
    """Names created (or deleted) per pool that the cache does not show yet. Thread-safe."""

    def __init__(
        self, *, ttl: float = IN_FLIGHT_TTL_SECONDS, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self._ttl = ttl
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._names: dict[str, dict[str, float]] = {}  # guarded by _lock; pool -> name -> until

    def add(self, pool: str, name: str) -> None:
        with self._lock:
            self._names.setdefault(pool, {})[name] = self._monotonic() + self._ttl

    def outstanding(self, pool: str, settled: Callable[[str], bool]) -> set[str]:
        """The names still in flight: neither ``settled`` (the cache caught up) nor expired."""
        now = self._monotonic()
        with self._lock:
            names = self._names.get(pool, {})
            for name in [n for n, until in names.items() if until <= now or settled(n)]:
                del names[name]
            if not names:
                self._names.pop(pool, None)
            return set(names)

    def forget(self, pool: str) -> None:
        with self._lock:
            self._names.pop(pool, None)


@dataclass(frozen=True)
class PoolClients:
    """Writers (all-namespace paths; the namespace is given per call)."""

    pools: ResourceClient
    pods: ResourceClient
    secrets: ResourceClient


class PoolReconciler:
    """Keeps each KernelPool's idle standby Pods at ``spec.replicas``."""

    def __init__(
        self,
        *,
        pools: Lookup,
        pods: IndexedLookup,
        clients: PoolClients,
        settings: ReconcileSettings,
        recorder: EventRecorder,
        token_for: TokenFor | None,
        activated: Callable[[Obj], bool],  # whether a claimed Pod's kernel is activated
        backoff: StandbyBackoff | None = None,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._activated = activated
        self._pools = pools
        self._pods = pods
        self._c = clients
        self._settings = settings
        self._recorder = recorder
        self._token_for = token_for
        self._backoff = backoff or StandbyBackoff(monotonic=monotonic)
        self._wall_clock = wall_clock
        self._created = InFlight(monotonic=monotonic)
        self._deleted = InFlight(monotonic=monotonic)
        # uids of standby Pods whose token Secret exists (created, or found existing)
        self._lock = threading.Lock()
        self._tokens: TTLCache[str, bool] = TTLCache(  # guarded by _lock
            maxsize=100_000, ttl=3600.0, timer=monotonic
        )
        # uids of claimed Pods being activated -> when a pass first saw them so
        self._activating: TTLCache[str, float] = TTLCache(  # guarded by _lock
            maxsize=100_000, ttl=2 * ACTIVATION_HOLD_SECONDS, timer=monotonic
        )
        # pool key -> when a change of its claimed count was last written
        self._claims_written: TTLCache[str, float] = TTLCache(  # guarded by _lock
            maxsize=100_000, ttl=CLAIMS_STATUS_INTERVAL_SECONDS, timer=monotonic
        )
        self._monotonic = monotonic

    @property
    def enabled(self) -> bool:
        return self._token_for is not None

    def reconcile(self, key: str) -> Result:
        pool = self._pools.get(key)
        if pool is None or meta(pool).get("deletionTimestamp"):
            # Gone or going: the garbage collector deletes its Pods (they are owned by it).
            self._backoff.forget(key)
            self._created.forget(key)
            self._deleted.forget(key)
            return DONE
        pods = self._pods.by_index(POOL_INDEX, key)
        names = {str(meta(p).get("name", "")) for p in pods}
        self._discard_exited(key, pool, pods)

        deleting = self._deleted.outstanding(
            key, lambda n: not any(_named(p, n) and is_standby(p, pool) for p in pods)
        )
        idle = [
            p
            for p in pods
            if is_standby(p, pool) and not is_terminal(p) and meta(p).get("name") not in deleting
        ]
        ready = [p for p in idle if pod_ready(p)]
        if ready:
            self._backoff.succeeded(key)
        self._ensure_tokens(pool, [p for p in idle if not pod_ready(p)])
        creating = self._created.outstanding(key, lambda n: n in names)

        want = max(0, int((pool.get("spec") or {}).get("replicas") or 0))
        have = len(idle) + len(creating)
        requeue_after: float | None = None
        error: TransientError | None = None
        try:
            hold = self._activations_hold(pods, pool) if have < want else 0.0
            if hold > 0:
                requeue_after = hold  # their annotation's event usually comes first
            elif have < want and self.enabled:
                requeue_after = self._scale_up(key, pool, want - have)
            elif have > want:
                self._scale_down(key, pool, idle, have - want)
        except TransientError as err:
            error = err

        claimed = [
            p
            for p in pods
            if NAME_LABEL in (meta(p).get("labels") or {})
            and not meta(p).get("deletionTimestamp")
            and not is_terminal(p)
        ]
        wait = self._write_status(
            key, pool, idle=len(idle), ready=len(ready), claimed=len(claimed), want=want
        )
        if error is not None:
            raise error
        if wait > 0:
            requeue_after = wait if requeue_after is None else min(requeue_after, wait)
        return Result(requeue_after=requeue_after)

    # ------------------------------------------------------------- scaling
    def _activations_hold(self, pods: Sequence[Obj], pool: Obj) -> float:
        """How long the refill still waits for the pool's claimed kernels being activated
        (0: it need not). Standby kernels starting now would take CPU from the kernels users
        are waiting for, on nodes they share; a claim waits at most ``ACTIVATION_HOLD_SECONDS``
        so that an activation that keeps failing never stops the refill."""
        now = self._monotonic()
        left = 0.0
        with self._lock:
            for pod in pods:
                m = meta(pod)
                labels = m.get("labels") or {}
                if NAME_LABEL not in labels or controlled_by_pool(pod, pool):
                    continue
                uid = str(m.get("uid", ""))
                if m.get("deletionTimestamp") or is_terminal(pod) or self._activated(pod):
                    # Activated: a burst of claims may go on; wait a moment after each.
                    since = self._activating.get(uid)
                    if since is not None:
                        left = max(left, since + CLAIM_QUIET_SECONDS - now)
                    continue
                since = self._activating.setdefault(uid, now)
                left = max(left, since + ACTIVATION_HOLD_SECONDS - now)
        return left

    def _scale_up(self, key: str, pool: Obj, missing: int) -> float | None:
        """Create up to ``missing`` standby Pods; the seconds to wait when backing off."""
        wait = self._backoff.wait(key)
        if wait > 0:
            return wait
        if self._backoff.failures(key):
            missing = 1  # failing: one probe at a time, each after its backoff
        batch, created = 1, 0
        while created < missing:
            for _ in range(min(batch, missing - created)):
                self._create_standby(key, pool)
                created += 1
            batch *= 2
        return None

    def _create_standby(self, key: str, pool: Obj) -> None:
        assert self._token_for is not None
        namespace = str(meta(pool).get("namespace", ""))
        name = standby_pod_name(str(meta(pool).get("name", "")))
        body = build_standby_pod(pool, name=name, settings=self._settings)
        try:
            pod = self._c.pods.create(body, namespace=namespace)
        except ApiError as err:
            raise TransientError(f"create standby pod {namespace}/{name}: {err}") from err
        self._created.add(key, name)
        log.info("created standby pod %s", name, extra={"pool": key})
        self._create_token(pod)

    def _create_token(self, pod: Obj) -> None:
        """The standby Pod's token Secret; a failure is left to the next pass."""
        assert self._token_for is not None
        m = meta(pod)
        namespace, name, uid = str(m.get("namespace", "")), str(m.get("name", "")), m.get("uid")
        secret = build_activation_secret(pod, self._token_for(namespace, name))
        try:
            self._c.secrets.create(secret, namespace=namespace)
        except Conflict as err:
            if not err.already_exists:
                log.warning("could not create the token of standby pod %s: %s", name, err)
                return
        except ApiError as err:
            log.warning("could not create the token of standby pod %s: %s", name, err)
            return
        with self._lock:
            self._tokens[str(uid)] = True

    def _ensure_tokens(self, pool: Obj, waiting: Sequence[Obj]) -> None:
        """Standby Pods not Ready whose token this process has not made sure of (a controller
        that died between creating a Pod and its Secret): create it, once per Pod."""
        if self._token_for is None:
            return
        for pod in waiting:
            with self._lock:
                known = str(meta(pod).get("uid")) in self._tokens
            if not known:
                self._create_token(pod)

    def _scale_down(self, key: str, pool: Obj, idle: Sequence[Obj], surplus: int) -> None:
        # Not Ready first (they serve no one yet), then the newest.
        not_ready = [p for p in idle if not pod_ready(p)]
        ready = sorted(
            (p for p in idle if pod_ready(p)),
            key=lambda p: str(meta(p).get("creationTimestamp") or ""),
            reverse=True,
        )
        for pod in [*not_ready, *ready][:surplus]:
            self._delete_standby(key, pod, why="the pool has more idle kernels than replicas")

    def _delete_standby(self, key: str, pod: Obj, *, why: str) -> None:
        m = meta(pod)
        name, namespace = str(m.get("name", "")), str(m.get("namespace", ""))
        try:
            self._c.pods.delete(
                name, namespace=namespace, resource_version=str(m.get("resourceVersion") or "")
            )
        except (NotFound, Conflict):
            return  # gone, or claimed meanwhile: not ours to delete any more
        except ApiError as err:
            raise TransientError(f"delete standby pod {namespace}/{name}: {err}") from err
        self._deleted.add(key, name)
        log.info("deleted standby pod %s: %s", name, why, extra={"pool": key})

    def _discard_exited(self, key: str, pool: Obj, pods: Sequence[Obj]) -> None:
        """Exited standby Pods: count the failure (backoff), tell the pool, delete them."""
        for pod in pods:
            if not (is_standby(pod, pool) and is_terminal(pod)):
                continue
            name = str(meta(pod).get("name", ""))
            delay = self._backoff.failed(key, str(meta(pod).get("uid", "")))
            if delay is not None:
                self._recorder.record(
                    pool,
                    kind=POOL_KIND,
                    type_="Warning",
                    reason="StandbyFailed",
                    message=(
                        f"standby Pod {name} exited before it was claimed:"
                        f" {failure_message(pod, '')}; next standby Pod in {delay:g} s"
                    ),
                )
            try:
                self._delete_standby(key, pod, why="it exited")
            except TransientError as err:
                log.warning("%s", err)

    # --------------------------------------------------------------- status
    def _write_status(
        self, key: str, pool: Obj, *, idle: int, ready: int, claimed: int, want: int
    ) -> float:
        """Write the status when it changed; 0, or the seconds to wait before it may be
        written (a change of ``claimed`` at most once per ``CLAIMS_STATUS_INTERVAL_SECONDS``)."""
        m = meta(pool)
        current = pool.get("status") or {}
        condition = self._ready_condition(
            pool, ready=ready, want=want, current=current.get("conditions") or ()
        )
        desired: dict[str, Any] = {
            "replicas": idle,
            "readyReplicas": ready,
            "claimed": claimed,
            "selector": standby_selector(str(m.get("name", ""))),
            "conditions": [condition],
        }
        if m.get("generation") is not None:
            desired["observedGeneration"] = m["generation"]
        patch = merge_patch(current, desired)
        if not patch:
            return 0.0
        if "claimed" in patch:  # claims come in bursts: coalesce them
            now = self._monotonic()
            with self._lock:
                last = self._claims_written.get(key)
                if last is not None and now - last < CLAIMS_STATUS_INTERVAL_SECONDS:
                    return last + CLAIMS_STATUS_INTERVAL_SECONDS - now
                self._claims_written[key] = now
        try:
            self._c.pools.patch(
                str(m.get("name", "")),
                {"status": patch},
                namespace=str(m.get("namespace", "")),
                subresource="status",
                field_manager=FIELD_MANAGER,
            )
        except NotFound:
            return 0.0
        except ApiError as err:
            raise TransientError(f"write the status of pool {m.get('name')}: {err}") from err
        return 0.0

    def _ready_condition(
        self, pool: Obj, *, ready: int, want: int, current: Sequence[Obj]
    ) -> dict[str, Any]:
        key = f"{meta(pool).get('namespace', '')}/{meta(pool).get('name', '')}"
        if not self.enabled:
            status, reason = "False", "ActivationKeyMissing"
            message = "the controller has no activation key: Kernels of this pool start cold"
        elif ready >= want:
            status, reason = "True", "PoolReady"
            message = f"{ready} idle kernel(s) ready"
        elif self._backoff.failures(key):
            status, reason = "False", "StandbyFailing"
            message = (
                f"{ready} of {want} idle kernels ready; standby Pods keep exiting"
                f" ({self._backoff.failures(key)} in a row, see the pool's Events)"
            )
        else:
            status, reason = "False", "Filling"
            message = f"{ready} of {want} idle kernels ready"
        since = self._wall_clock().strftime("%Y-%m-%dT%H:%M:%SZ")
        for cond in current:
            if cond.get("type") == "Ready" and cond.get("status") == status:
                since = str(cond.get("lastTransitionTime") or since)
        return {
            "type": "Ready",
            "status": status,
            "reason": reason,
            "message": message,
            "lastTransitionTime": since,
        }


def _named(pod: Obj, name: str) -> bool:
    return meta(pod).get("name") == name
