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
3. **Record**: the annotation ``jupyter.org/activated-for: <kernel id>`` on the Pod; the
   Kernel turns Ready from it.

A controller that dies between any two steps leaves nothing half-claimed: on restart the
Kernel finds its claimed Pod by label, not activated, and activates it.
Runs on worker threads.
"""

from __future__ import annotations

import logging
import threading
import time

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
    ACTIVATED_ANNOTATION,
    FIELD_MANAGER,
    SECRET_KEY_FIELD,
    Obj,
    controlled_by,
    meta,
    owner_reference,
)
from reconcilers.outcome import TerminalError, TransientError
from reconcilers.pooled import claim_patch

log = logging.getLogger(__name__)

KEY_MEMORY_SECONDS = 600.0
RECORDED_MEMORY_SECONDS = 30.0


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
    ) -> None:
        self._pods = pods
        self._secrets = secrets
        self._activator = activator
        self._key = activation_key
        self._port = activation_port
        self._lock = threading.Lock()
        # Kernel uid -> the key its activation is being tried with (until it succeeds)
        self._keys: TTLCache[str, str] = TTLCache(  # guarded by _lock
            maxsize=100_000, ttl=KEY_MEMORY_SECONDS, timer=time.monotonic
        )
        # Pod uid -> the kernel id its activation was recorded for, until the cache shows it
        self._activated: TTLCache[str, str] = TTLCache(  # guarded by _lock
            maxsize=100_000, ttl=RECORDED_MEMORY_SECONDS, timer=time.monotonic
        )

    @property
    def enabled(self) -> bool:
        """Without an activation key (see the manager's log) nothing is claimed: cold starts."""
        return self._key is not None

    def claim(self, kernel: Obj, candidates: tuple[Obj, ...]) -> Obj | None:
        """Claim the first of ``candidates`` that is still free; the claimed Pod, or None."""
        namespace = meta(kernel).get("namespace", "")
        for pod in candidates:
            name = str(meta(pod).get("name", ""))
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
                mine = self._claimed_for(kernel, name, namespace)
                if mine is None:
                    continue  # claimed by another Kernel, or deleted: the next one
                claimed = mine  # our own earlier claim (another replica's, before a failover)
            except ApiError as err:
                raise TransientError(f"claim pod {name}: {err}") from err
            log.info(
                "claimed pod %s", name, extra={"kernel": f"{namespace}/{meta(kernel)['name']}"}
            )
            return claimed
        return None

    def _claimed_for(self, kernel: Obj, name: str, namespace: str) -> Obj | None:
        """After a conflict: the Pod, if it is now claimed for this very Kernel."""
        try:
            pod: Obj = self._pods.get(name, namespace=namespace)
        except ApiError:
            return None
        if controlled_by(pod, kernel) and not meta(pod).get("deletionTimestamp"):
            return pod
        return None

    def activate(self, kernel: Obj, pod: Obj, desired: Desired) -> None:
        """Give the claimed ``pod``'s kernel the Kernel's identity and record it."""
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
        try:
            self._pods.patch(
                name,
                {"metadata": {"annotations": {ACTIVATED_ANNOTATION: identity.kernel_id}}},
                namespace=namespace,
                field_manager=FIELD_MANAGER,
            )
        except ApiError as err:
            raise TransientError(f"record the activation of pod {name}: {err}") from err
        self._forget_key(uid)
        with self._lock:
            self._activated[str(meta(pod).get("uid", ""))] = identity.kernel_id

    def recorded(self, pod: Obj, kernel_id: str) -> bool:
        """Whether this process activated ``pod`` for ``kernel_id`` and recorded it, though
        the cache may not show the annotation yet (then there is nothing to do but wait for
        it: its event brings the next pass)."""
        with self._lock:
            return self._activated.get(str(meta(pod).get("uid", ""))) == kernel_id

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
