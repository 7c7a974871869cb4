"""Claiming a standby Pod of a warm pool for a Kernel, and activating it (SPEC §13).

Every step is idempotent, and the API's optimistic concurrency is the arbiter:

1. **Claim**: a merge patch of the Pod's metadata — the label ``jupyter.org/kernel-name``,
   the controller ownerReference moved from the pool to the Kernel — carrying the cached
   ``resourceVersion``. Of two claims of one Pod (two Kernels, or two controllers during a
   leader failover) the second gets ``409 Conflict`` and tries the next candidate; a Pod is
   never claimed twice and never has two controller owners.
2. **Activate** (:mod:`reconcilers.activation`): the claimed Pod's kernel is given the Kernel's
   identity; in secret-key mode the Kernel's Secret is created with the key first (or, when it
   exists from an earlier attempt whose key nobody knows any more, its key is replaced: no
   client has it, the Kernel was never Ready). A retry with the same identity is answered as
   the first; a standby kernel already activated for another identity is deleted (the
   Kernel's next pass claims another Pod or starts cold).
3. **Remember** it, in memory only: the Kernel's next pass turns it Ready, and that status,
   naming the Pod, is the activation's durable record (:func:`reconcilers.pooled.activation_of`);
   the activation costs no write of its own.

A controller that dies between any two steps leaves nothing half-claimed: on restart the
Kernel finds its claimed Pod by label and, unless its status shows it activated, activates it
(again, if it died right after the activation: with the key of ``--connection-key=kernel-id``
the same identity gets the same answer; a secret key died with the controller, and the kernel
is replaced).

Claims run on worker threads. Activations (steps 2 and 3) run on a pool of activation
threads of their own (:meth:`PoolClaims.ensure_activation` starts one and returns): the
kernel's start takes a moment, and a burst of pooled Kernels must not wait for each other's
behind a few workers. When one ends, ``on_done`` gets the Kernel and the Pod (the controller
enqueues the Kernel and the Pod's pool); a failure is raised by the Kernel's next pass, so
its retries are rate limited as any reconcile error.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from cachetools import TTLCache

from informers import ApiError, Conflict, Invalid, NotFound, ResourceClient
from reconcilers.activation import (
    ActivationFailed,
    ActivationRefused,
    ActivationRequest,
    Activator,
    activation_token,
)
from reconcilers.desired import Desired
from reconcilers.model import (
    FIELD_MANAGER,
    NAME_LABEL,
    SECRET_KEY_FIELD,
    Obj,
    controlled_by,
    meta,
    owner_reference,
)
from reconcilers.outcome import TerminalError, TransientError
from reconcilers.pooled import claim_patch

log = logging.getLogger(__name__)

# How long an activation's key and its success are remembered: well beyond the moment the
# cache shows the Kernel's status written after it.
KEY_MEMORY_SECONDS = 600.0
TAKEN_MEMORY_SECONDS = 30.0  # longer than the cache takes to show a claim
ACTIVATION_THREADS = 16  # activations at once: each mostly waits for its kernel to start


class PoolClaims:
    """Claims and activates standby Pods through ``pods`` and ``secrets`` (all-namespace
    clients; the namespace is given per call)."""

    def __init__(
        self,
        *,
        pods: ResourceClient,
        secrets: ResourceClient,
        activator: Activator,
        activation_key: bytes | None,
        activation_port: int,
        on_done: Callable[[Obj, Obj], None] = lambda kernel, pod: None,
        threads: int = ACTIVATION_THREADS,
    ) -> None:
        self._on_done = on_done
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="activation")
        # Pod uid -> its activation running on the executor; then what it raised, if anything,
        # until the Kernel's next pass raises it (guarded by _lock)
        self._running: dict[str, Future[None]] = {}
        self._failed: TTLCache[str, Exception] = TTLCache(
            maxsize=100_000, ttl=KEY_MEMORY_SECONDS, timer=time.monotonic
        )  # a Kernel deleted after its activation failed never asks again
        self._pods = pods
        self._secrets = secrets
        self._activator = activator
        self._key = activation_key
        self._port = activation_port
        self._lock = threading.Lock()
        # Kernel uid -> the key its activation was tried with: every retry uses it
        self._keys: TTLCache[str, str] = TTLCache(  # guarded by _lock
            maxsize=100_000, ttl=KEY_MEMORY_SECONDS, timer=time.monotonic
        )
        # uids of Pods claimed (or being claimed) lately, by this process or another
        self._taken: TTLCache[str, bool] = TTLCache(  # guarded by _lock
            maxsize=100_000, ttl=TAKEN_MEMORY_SECONDS, timer=time.monotonic
        )
        # Pod uid -> the kernel id it was activated for, until the cache shows the status
        self._activated: TTLCache[str, str] = TTLCache(  # guarded by _lock
            maxsize=100_000, ttl=KEY_MEMORY_SECONDS, timer=time.monotonic
        )

    @property
    def enabled(self) -> bool:
        """Without an activation key (see the manager's log) nothing is claimed: cold starts."""
        return self._key is not None

    def claim(self, kernel: Obj, candidates: tuple[Obj, ...]) -> Obj | None:
        """Claim the first of ``candidates`` that is still free; the claimed Pod, or None.

        Pods this process saw claimed (by itself or, from a conflict, by another) are skipped
        until the cache catches up: in a burst, the cache still shows idle the Pods that
        other workers have just claimed, and trying them would cost a conflict each."""
        namespace = meta(kernel).get("namespace", "")
        for pod in candidates:
            name = str(meta(pod).get("name", ""))
            uid = str(meta(pod).get("uid", ""))
            with self._lock:
                if uid in self._taken:
                    continue
                self._taken[uid] = True
            try:
                claimed: Obj = self._pods.patch(
                    name,
                    claim_patch(pod, kernel, owner_reference(kernel)),
                    namespace=namespace,
                    field_manager=FIELD_MANAGER,
                )
            except NotFound:
                continue  # gone meanwhile: the next one
            except Conflict:
                mine, free = self._after_conflict(kernel, name, namespace)
                if mine is None:
                    if free:  # only changed (e.g. its status): a later pass may claim it
                        self._untake(uid)
                    continue  # claimed by another Kernel, or deleted: the next one
                claimed = mine  # our own earlier claim (another replica's, before a failover)
            except ApiError as err:
                self._untake(uid)
                raise TransientError(f"claim pod {name}: {err}") from err
            log.info(
                "claimed pod %s", name, extra={"kernel": f"{namespace}/{meta(kernel)['name']}"}
            )
            return claimed
        return None

    def _after_conflict(self, kernel: Obj, name: str, namespace: str) -> tuple[Obj | None, bool]:
        """After a conflict: the Pod if it is now claimed for this very Kernel; and whether it
        is still free (unclaimed, not being deleted)."""
        try:
            pod: Obj = self._pods.get(name, namespace=namespace)
        except ApiError:
            return None, False
        m = meta(pod)
        if m.get("deletionTimestamp"):
            return None, False
        if controlled_by(pod, kernel):
            return pod, False
        return None, NAME_LABEL not in (m.get("labels") or {})

    def _untake(self, uid: str) -> None:
        with self._lock:
            self._taken.pop(uid, None)

    def ensure_activation(self, kernel: Obj, pod: Obj, desired: Desired) -> None:
        """Have the claimed ``pod`` activated for ``kernel`` in the background, unless that is
        under way or done (and waits for the cache to show it). An activation that failed
        since the last pass is raised here (``TransientError``/``TerminalError``) and tried
        again on the next pass."""
        uid = str(meta(pod).get("uid", ""))
        identity = desired.identity
        with self._lock:
            if uid in self._running:
                return
            failure = self._failed.pop(uid, None)
            if failure is None and identity and self._activated.get(uid) == identity.kernel_id:
                return
        if failure is not None:
            raise failure

        def run() -> None:
            try:
                self.activate(kernel, pod, desired)
            except (TransientError, TerminalError) as err:
                with self._lock:
                    self._failed[uid] = err
            except Exception as err:  # anything else: reported by the Kernel's next pass
                log.exception("activation of pod %s failed", meta(pod).get("name"))
                with self._lock:
                    self._failed[uid] = TransientError(
                        f"activate pod {meta(pod).get('name')}: {err}"
                    )
            finally:
                with self._lock:
                    self._running.pop(uid, None)
                self._on_done(kernel, pod)

        with self._lock:
            try:
                self._running[uid] = self._executor.submit(run)
            except RuntimeError as err:  # shut down: the controller is stopping
                raise TransientError("the controller is stopping") from err

    def activated_for(self, pod: Obj) -> str | None:
        """The kernel id this process activated ``pod`` for, in the moments before the cache
        shows the Kernel's status written after it."""
        with self._lock:
            return self._activated.get(str(meta(pod).get("uid", "")))

    def stop(self, *, wait: bool) -> None:
        """Start no activation any more; with ``wait``, join those under way."""
        self._executor.shutdown(wait=wait, cancel_futures=True)

    def activate(self, kernel: Obj, pod: Obj, desired: Desired) -> None:
        """Give the claimed ``pod``'s kernel the Kernel's identity and remember it."""
        if self._key is None:
            raise TerminalError("warm pools are off: the controller has no activation key")
        identity = desired.identity
        assert identity is not None
        namespace = meta(kernel).get("namespace", "")
        name = str(meta(pod).get("name", ""))
        host = str((pod.get("status") or {}).get("podIP") or "")
        if not host:
            raise TransientError(f"claimed pod {name} has no IP yet")
        # Retries of one activation use one key: a standby kernel accepts one identity only.
        uid = str(meta(kernel).get("uid", ""))
        with self._lock:
            key = self._keys.setdefault(uid, desired.activation_key)
        if desired.secret is not None:
            self._ensure_secret(desired.secret, key, namespace)
        request = ActivationRequest(
            kernel_id=identity.kernel_id,
            key=key,
            ports=identity.ports,
            idle_timeout=desired.idle_timeout,
        )
        token = activation_token(self._key, namespace=namespace, pod_name=name)
        try:
            self._activator.activate(host=host, port=self._port, token=token, request=request)
        except ActivationRefused as err:
            self._forget_key(uid)
            self._discard(pod, namespace, str(err))
            raise TransientError(f"pod {name} was activated for another kernel: replaced") from err
        except ActivationFailed as err:
            raise TransientError(f"activate pod {name}: {err}") from err
        with self._lock:
            self._activated[str(meta(pod).get("uid", ""))] = identity.kernel_id
        log.info("activated pod %s", name, extra={"kernel": f"{namespace}/{meta(kernel)['name']}"})

    def _forget_key(self, uid: str) -> None:
        with self._lock:
            self._keys.pop(uid, None)

    def _ensure_secret(self, secret: Obj, key: str, namespace: str) -> None:
        """The Kernel's Secret holds the key the kernel is activated with."""
        name = meta(secret).get("name", "")
        body = {**secret, "stringData": {SECRET_KEY_FIELD: key}}
        try:
            self._secrets.create(body, namespace=namespace)
            return
        except Conflict as err:
            if not err.already_exists:
                raise TransientError(f"create secret {name}: {err}") from err
        except Invalid as err:
            raise TerminalError(f"create secret {name}: {err}") from err
        except ApiError as err:
            raise TransientError(f"create secret {name}: {err}") from err
        # Left by an earlier attempt whose key this process does not know (a restart): no
        # client has it (the Kernel was never Ready), so it is replaced.
        patch = {"stringData": {SECRET_KEY_FIELD: key}}
        try:
            self._secrets.patch(name, patch, namespace=namespace, field_manager=FIELD_MANAGER)
        except ApiError as err:
            raise TransientError(f"replace the key of secret {name}: {err}") from err

    def _discard(self, pod: Obj, namespace: str, why: str) -> None:
        name = str(meta(pod).get("name", ""))
        try:
            self._pods.delete(name, namespace=namespace, uid=str(meta(pod).get("uid", "")))
        except (NotFound, Conflict):
            return
        except ApiError as err:
            raise TransientError(f"delete pod {name}: {err}") from err
        log.warning("deleted claimed pod %s: %s", name, why)
