"""The applier: makes a :class:`~reconcilers.desired.Desired` true, writing only what differs
from the cache, in an order that never loses a decision:

1. the identity annotations (one metadata merge patch guarded by the cached
   resourceVersion, so two replicas cannot both decide), before anything uses them;
2. the Secret (secret-key mode) and the Pod, only when the Pod is missing from the cache and
   no creation is still expected (see :mod:`reconcilers.expectations`);
3. the Service: created when missing, else a merge patch of the fields we own when they drifted;
4. the status through the status subresource, only when it differs (skipped while a Pod we
   created is not in the cache yet: the Pod's own event brings the next pass);
5. Events: at most one Normal Event per pass that created children (``PodCreated`` names the
   Service too when both were created, ``ServiceCreated`` when only the Service was; for a
   Kernel that names a warm pool ``Claimed`` or ``ColdStart``), so a new Kernel costs one
   Event; 6. deleting the Kernel when it is culled or its failure TTL ran out.

A Kernel that names a pool first tries to claim one of the pool's idle standby Pods and
activate it (:mod:`reconcilers.claim`); only when none can be claimed is its Pod created
(cold). A claimed Pod not yet activated is activated on the next pass.

A Kernel whose namespace is being deleted gets nothing: a create refused with the status cause
``NamespaceTerminating`` is not retried, records no Event and writes no status, and the
namespace is remembered (:mod:`reconcilers.terminating`), so its other Kernels are left alone
without a request.

Every write uses the field manager ``kernel-controller``. Runs on worker threads.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from cachetools import LRUCache, TTLCache

from informers import (
    ApiError,
    BadRequest,
    Conflict,
    ConnectionFailed,
    Forbidden,
    Invalid,
    NotFound,
    ResourceClient,
    ServerError,
    TooManyRequests,
    object_key,
)
from reconcilers.claim import PoolClaims
from reconcilers.desired import Desired, Observed, service_drift
from reconcilers.events import EventRecorder
from reconcilers.expectations import Expectations
from reconcilers.model import FIELD_MANAGER, Obj, meta
from reconcilers.outcome import DONE, Result, TerminalError, TransientError
from reconcilers.status import merge_patch
from reconcilers.terminating import TerminatingNamespaces

log = logging.getLogger(__name__)

POD, SERVICE = "pod", "service"
WRITTEN_STATUS_TTL_SECONDS = 30.0
READY_MEMORY = 20_000
TRANSIENT = (ConnectionFailed, ServerError, TooManyRequests, Conflict)


class KernelMetrics(Protocol):
    """Domain metrics the applier reports (SPEC §5); called on worker threads."""

    def kernel_created(self, namespace: str) -> None: ...

    def kernel_create_failed(self, namespace: str) -> None: ...

    def kernel_culled(self, namespace: str) -> None: ...

    def kernel_ready(self, namespace: str, seconds: float, source: str) -> None: ...

    def pool_claim(self, result: str) -> None: ...


class NoKernelMetrics:
    def kernel_created(self, namespace: str) -> None:
        pass

    def kernel_create_failed(self, namespace: str) -> None:
        pass

    def kernel_culled(self, namespace: str) -> None:
        pass

    def kernel_ready(self, namespace: str, seconds: float, source: str) -> None:
        pass

    def pool_claim(self, result: str) -> None:
        pass


@dataclass
class _Step:
    """What one pass did so far (for its Event and its status)."""

    status: dict[str, Any]
    created_pod: bool = False
    created_service: bool = False
    claimed: Obj | None = None
    awaiting_activation: bool = False  # under way (or done, and the cache not there yet)
    pod_unseen: bool = False  # a create found the Pod there already; the cache will show it
    terminal: TerminalError | None = None


class _NamespaceTerminating(Exception):
    """A create was refused because the Kernel's namespace is being deleted."""


@dataclass(frozen=True)
class Clients:
    """Writers for each kind (all-namespace paths; the namespace is given per call)."""

    kernels: ResourceClient
    pods: ResourceClient
    services: ResourceClient
    secrets: ResourceClient


class Applier:
    """Writes the difference between the desired state and the cache."""

    def __init__(
        self,
        *,
        clients: Clients,
        recorder: EventRecorder,
        expectations: Expectations,
        metrics: KernelMetrics | None = None,
        on_reissued: Callable[[Obj], None] = lambda event: None,
        occurrences: Callable[[Obj], int] = lambda event: 1,
        terminating: TerminatingNamespaces | None = None,
        claims: PoolClaims | None = None,
    ) -> None:
        self._c = clients
        self._claims = claims
        self._recorder = recorder
        self._expectations = expectations
        self._terminating = terminating if terminating is not None else TerminatingNamespaces()
        self._metrics = metrics or NoKernelMetrics()
        self._on_reissued = on_reissued
        self._occurrences = occurrences
        # Read-your-writes: the last status written per Kernel and the resourceVersion the
        # cache showed then, so a pass that runs before the informer shows our write does not
        # repeat it. Forgotten as soon as the cache shows another version (or after the TTL).
        self._written_lock = threading.Lock()
        self._written_status: TTLCache[str, tuple[object, dict[str, Any]]] = TTLCache(
            maxsize=100_000, ttl=WRITTEN_STATUS_TTL_SECONDS, timer=time.monotonic
        )  # guarded by _written_lock
        # Kernels seen turning Ready (uids), for kernel_startup_seconds: a Kernel whose stored
        # status shows it Ready is not counted again either, after a restart of ours.
        self._ready_seen: LRUCache[str, bool] = LRUCache(READY_MEMORY)  # guarded by _written_lock

    def awaiting(self, key: str) -> frozenset[str]:
        """The kinds created for the Kernel ``key`` that the cache does not show yet; read it
        before the cache (see :attr:`Observed.awaiting`)."""
        return frozenset(k for k in (POD, SERVICE) if self._expectations.pending(k, key))

    def apply(self, kernel: Obj, desired: Desired, observed: Observed) -> Result:
        namespace = meta(kernel).get("namespace", "")
        if namespace in self._terminating:
            return DONE  # deleted with its namespace soon: nothing can be created there
        try:
            return self._apply(kernel, desired, observed)
        except _NamespaceTerminating:
            self._terminating.mark(namespace)
            return DONE

    def _apply(self, kernel: Obj, desired: Desired, observed: Observed) -> Result:
        namespace = meta(kernel).get("namespace", "")
        if desired.annotations is not None:
            self._annotate(kernel, desired.annotations)

        # A Pod we created (or claimed) but do not see yet: its informer event brings the next
        # pass, and the status it shows then; writing "no Pod" meanwhile would be a wasted
        # write, and a second claim or create would be one too many.
        awaiting_pod = desired.pod is not None and POD in observed.awaiting
        step = _Step(status=desired.status)
        try:
            if desired.pod is not None and not awaiting_pod:
                self._start_pod(kernel, desired, observed, step)
            to_activate = step.claimed
            if to_activate is None and desired.activate is not None:
                to_activate = observed.pod
            if to_activate is not None and self._claims is not None:
                # In the background (meanwhile the Service is made); its end enqueues the
                # Kernel again.
                step.awaiting_activation = True
                self._claims.ensure_activation(kernel, to_activate, desired)
            if desired.service is not None and SERVICE not in observed.awaiting:
                step.created_service = self._ensure_service(
                    kernel, desired.service, observed.service
                )
            self._delete_surplus(kernel, desired.delete_pods)
        finally:
            self._record_created(kernel, step, pool=desired.pool)

        busy = (
            step.created_pod
            or step.pod_unseen
            or step.claimed is not None
            or step.awaiting_activation
            or awaiting_pod
        )
        if not busy and not desired.delete_kernel:
            wrote = self._write_status(kernel, step.status)
            if wrote and desired.became_ready_after is not None and self._first_ready(kernel):
                self._metrics.kernel_ready(
                    namespace, desired.became_ready_after, desired.ready_source
                )

        self._record_events(kernel, desired)

        if desired.delete_kernel:
            self._delete_kernel(kernel)
            if any(e.reason == "Culled" for e in desired.events):
                self._metrics.kernel_culled(namespace)
        if step.terminal is not None:
            raise step.terminal
        return Result(requeue_after=desired.requeue_after)

    def _first_ready(self, kernel: Obj) -> bool:
        """Whether this is the first time this process sees the Kernel turn Ready."""
        uid = str(meta(kernel).get("uid", ""))
        with self._written_lock:
            if uid in self._ready_seen:
                return False
            self._ready_seen[uid] = True
            return True

    def _annotate(self, kernel: Obj, annotations: dict[str, str]) -> None:
        m = meta(kernel)
        patch = {
            "metadata": {"annotations": annotations, "resourceVersion": m.get("resourceVersion")}
        }
        self._write(
            "annotate kernel",
            lambda: self._c.kernels.patch(
                m.get("name", ""),
                patch,
                namespace=m.get("namespace", ""),
                field_manager=FIELD_MANAGER,
            ),
        )

    def _start_pod(self, kernel: Obj, desired: Desired, observed: Observed, step: _Step) -> None:
        """Claim a standby Pod of the Kernel's pool, else create its Pod (cold)."""
        step.claimed = self._claim(kernel, desired, observed)
        if step.claimed is not None:
            return
        namespace = meta(kernel).get("namespace", "")
        try:
            created = self._create_pod(kernel, desired)
        except (Invalid, BadRequest, Forbidden) as err:
            self._metrics.kernel_create_failed(namespace)
            message = f"cannot create the kernel's Pod: {err.message}"
            self._recorder.record(
                kernel, type_="Warning", reason="PodCreationFailed", message=message
            )
            step.status = _pod_creation_failed(step.status, message)
            if isinstance(err, Forbidden):  # e.g. a quota: may pass later
                self._write_status(kernel, step.status)
                raise TransientError(message) from err
            step.terminal = TerminalError(message)
            return
        if not created:
            step.pod_unseen = True
            return
        step.created_pod = True
        if desired.pool is not None:
            self._metrics.pool_claim("miss")

    def _delete_surplus(self, kernel: Obj, pods: tuple[tuple[str, str], ...]) -> None:
        namespace = meta(kernel).get("namespace", "")
        for name, uid in pods:
            try:
                self._c.pods.delete(name, namespace=namespace, uid=uid)
            except (NotFound, Conflict):
                continue
            except ApiError as err:
                raise TransientError(f"delete surplus pod {name}: {err}") from err
            log.warning(
                "deleted pod %s: the Kernel had another one",
                name,
                extra={"kernel": str(object_key(kernel))},
            )

    def _claim(self, kernel: Obj, desired: Desired, observed: Observed) -> Obj | None:
        """A standby Pod claimed for ``kernel`` from its pool, or None (then: a cold start)."""
        if not desired.claim or self._claims is None or not self._claims.enabled:
            return None
        claimed = self._claims.claim(kernel, tuple(observed.standby))
        if claimed is not None:
            # The relabelled Pod reaches the cache a moment later: no second claim meanwhile.
            self._expectations.expect(POD, str(object_key(kernel)))
            self._metrics.pool_claim("hit")
        return claimed

    def _record_created(self, kernel: Obj, step: _Step, *, pool: str | None) -> None:
        """One Normal Event for what this pass created (for a new Kernel: Pod and Service, or
        the Pod it claimed from its pool and the Service)."""
        pod, service, claimed = step.created_pod, step.created_service, step.claimed
        if not (pod or service or claimed is not None):
            return
        name = meta(kernel).get("name", "")
        made = [f"{kind} {name}" for kind, done in (("Pod", pod), ("Service", service)) if done]
        if claimed is not None:
            claim = f"claimed Pod {meta(claimed).get('name')} from pool {pool}"
            reason, message = "Claimed", " and created ".join([claim, *made[-1:]])
        elif pod and pool is not None:
            reason = "ColdStart"
            message = f"no idle kernel in pool {pool}: created {' and '.join(made)}"
        else:
            reason = "PodCreated" if pod else "ServiceCreated"
            message = f"created {' and '.join(made)}"
        self._recorder.record(kernel, type_="Normal", reason=reason, message=message)

    def _record_events(self, kernel: Obj, desired: Desired) -> None:
        name = meta(kernel).get("name", "")
        for warning in desired.pod_warnings:
            pod_name = (warning.get("involvedObject") or {}).get("name", name)
            self._recorder.record(
                kernel,
                type_="Warning",
                reason=str(warning.get("reason") or "PodWarning"),
                message=f"Reissued from pod/{pod_name}: {warning.get('message', '')}",
                times=self._occurrences(warning),
            )
            self._on_reissued(warning)
        for event in desired.events:
            self._recorder.record(
                kernel, type_=event.type, reason=event.reason, message=event.message
            )

    # --------------------------------------------------------------- children
    def _create_pod(self, kernel: Obj, desired: Desired) -> bool:
        """Create the Kernel's Pod (and, in secret mode, its Secret first); whether this call
        created it (False: it already existed)."""
        assert desired.pod is not None
        m = meta(kernel)
        namespace = m.get("namespace", "")
        key = str(object_key(kernel))
        if desired.secret is not None:
            try:
                self._c.secrets.create(desired.secret, namespace=namespace)
            except Conflict as err:
                if not err.already_exists:
                    raise TransientError(f"create secret: {err}") from err
            except (Forbidden, NotFound) as err:
                _raise_if_terminating(err)
                raise
            except TRANSIENT as err:
                raise TransientError(f"create secret: {err}") from err
        self._expectations.expect(POD, key)
        try:
            self._c.pods.create(desired.pod, namespace=namespace)
        except Conflict as err:
            if err.already_exists:
                return False  # as for the Service: the cache will show whose it is
            self._expectations.observed(POD, key)
            raise TransientError(f"create pod: {err}") from err
        except TRANSIENT as err:
            self._expectations.observed(POD, key)
            raise TransientError(f"create pod: {err}") from err
        except ApiError as err:
            self._expectations.observed(POD, key)
            _raise_if_terminating(err)
            raise
        self._metrics.kernel_created(namespace)
        log.info("created pod", extra={"kernel": key})
        return True

    def _ensure_service(self, kernel: Obj, desired: dict[str, Any], cached: Obj | None) -> bool:
        """Create the Service when missing (True), else correct its drift (False)."""
        m = meta(kernel)
        name, namespace = m.get("name", ""), m.get("namespace", "")
        key = str(object_key(kernel))
        if cached is None:
            self._expectations.expect(SERVICE, key)
            try:
                self._c.services.create(desired, namespace=namespace)
            except Conflict as err:
                if err.already_exists:
                    # Ours from an earlier attempt that failed late (a timeout after the
                    # write), or a stranger's: the cache tells which once it shows it.
                    return False
                self._expectations.observed(SERVICE, key)
                raise TransientError(f"create service: {err}") from err
            except ApiError as err:
                self._expectations.observed(SERVICE, key)
                _raise_if_terminating(err)
                raise TransientError(f"create service: {err}") from err
            return True
        patch = service_drift(desired, cached)
        if patch is not None:
            self._write(
                "correct service",
                lambda: self._c.services.patch(
                    name, patch, namespace=namespace, field_manager=FIELD_MANAGER
                ),
            )
        return False

    def _write_status(self, kernel: Obj, status: dict[str, Any]) -> bool:
        m = meta(kernel)
        key = str(object_key(kernel))
        cached_version = m.get("resourceVersion")
        with self._written_lock:
            written = self._written_status.get(key)
            if written is not None and written[0] != cached_version:
                # The cache has moved past the version we wrote over: it shows our write (or
                # a later one, by anyone, which must be compared, not taken for ours).
                del self._written_status[key]
                written = None
        patch = merge_patch(kernel.get("status") or {}, status)
        if not patch:
            return False
        if written is not None and written[1] == status:
            return False  # we wrote exactly this; the cache has not caught up with it yet
        self._write(
            "write status",
            lambda: self._c.kernels.patch(
                m.get("name", ""),
                {"status": patch},
                namespace=m.get("namespace", ""),
                subresource="status",
                field_manager=FIELD_MANAGER,
            ),
        )
        with self._written_lock:
            self._written_status[key] = (cached_version, status)
        return True

    def _delete_kernel(self, kernel: Obj) -> None:
        m = meta(kernel)
        try:
            self._c.kernels.delete(
                m.get("name", ""), namespace=m.get("namespace", ""), uid=m.get("uid", "")
            )
        except NotFound:
            return
        except Conflict:
            return  # a newer Kernel of the same name: not ours to delete
        except ApiError as err:
            raise TransientError(f"delete kernel: {err}") from err

    @staticmethod
    def _write(what: str, call: Callable[[], object]) -> None:
        try:
            call()
        except NotFound as err:
            raise TransientError(f"{what}: {err}") from err
        except ApiError as err:
            if isinstance(err, TRANSIENT):
                raise TransientError(f"{what}: {err}") from err
            raise TerminalError(f"{what}: {err}") from err


def _raise_if_terminating(err: ApiError) -> None:
    """A create refused because the namespace is being deleted, or is already gone."""
    if (isinstance(err, Forbidden) and err.namespace_terminating) or (
        isinstance(err, NotFound) and err.namespace_missing
    ):
        raise _NamespaceTerminating(err.message) from err


def _pod_creation_failed(status: dict[str, Any], message: str) -> dict[str, Any]:
    conditions = [
        {"type": "Ready", "status": "False", "reason": "PodCreationFailed", "message": message}
        if c.get("type") == "Ready"
        else c
        for c in status.get("conditions") or ()
    ]
    return {**status, "conditions": conditions, "readyReplicas": 0}
