"""Warm pools, the pure part (SPEC §13): which Pods of a pool are idle, what a standby Pod
is, and what a pooled Kernel's Pod is built from. No I/O, no clock.

A pool's Pods carry ``jupyter.org/kernel-pool: <pool>``. A *standby* Pod is one the pool
controls (its controller ownerReference names the pool) and no Kernel has claimed (no
``jupyter.org/kernel-name`` label): its launcher waits for an activation. Claiming relabels it
and moves its controller ownerReference to the Kernel; it keeps the pool label, so the pool
can count its claims.

A claimed Pod is *activated* for a kernel id (:func:`activation_of`) when the Kernel's status
names it: a status is written for a claimed Pod only once its kernel was activated, so the
status (the Pod's IP and the kernel id) is the activation's durable record and the activation
costs no write of its own. Before the cache shows that status, the controller remembers the
activations it made; Pods activated by earlier versions carry the annotation
``jupyter.org/activated-for: <kernel id>``, which is still read.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Mapping, Sequence
from typing import Any

from informers import thaw
from reconcilers.model import (
    ACTIVATED_ANNOTATION,
    ACTIVATION_TOKEN_FIELD,
    ENV_ACTIVATION_PORT,
    ENV_ACTIVATION_TOKEN,
    NAME_LABEL,
    POOL_API_VERSION,
    POOL_KIND,
    POOL_LABEL,
    Obj,
    ReconcileSettings,
    activation_secret_name,
    controlled_by,
    controller_reference,
    meta,
)

STANDBY_CONTAINER = "kernel"
NAME_SUFFIX_CHARS = string.ascii_lowercase + string.digits
NAME_SUFFIX_LENGTH = 5
MAX_POD_NAME = 63  # the Pod's name also names its activation Secret and a Kernel may use it


def activated_for(pod: Obj) -> str | None:
    """The kernel id a claimed Pod's annotation (written by earlier versions, or put there by
    :func:`with_activation`) says its kernel was activated for, if any."""
    value = (meta(pod).get("annotations") or {}).get(ACTIVATED_ANNOTATION)
    return str(value) if value else None


def activation_of(pod: Obj, kernel: Obj | None, recorded: str | None = None) -> str | None:
    """The kernel id ``pod``'s kernel was activated for, if known: its annotation, else
    ``recorded`` (this process's memory of an activation), else ``kernel``'s status when it
    names the Pod (its IP) — written only after the activation."""
    found = activated_for(pod) or recorded
    if found or kernel is None:
        return found
    status = kernel.get("status") or {}
    ip = (pod.get("status") or {}).get("podIP")
    kernel_id = status.get("kernelID")
    if ip and kernel_id and status.get("podIP") == ip and controlled_by(pod, kernel):
        return str(kernel_id)
    return None


def with_activation(pod: Obj, kernel_id: str) -> Obj:
    """``pod`` marked as activated for ``kernel_id`` (a view: the annotation is not written),
    for the pure code that reads :func:`activated_for`."""
    m = meta(pod)
    annotations = {**(m.get("annotations") or {}), ACTIVATED_ANNOTATION: kernel_id}
    return {**pod, "metadata": {**m, "annotations": annotations}}


def controlled_by_pool(pod: Obj, pool: Obj) -> bool:
    return controlled_by(pod, pool, kind=POOL_KIND)


def is_standby(pod: Obj, pool: Obj) -> bool:
    """The pool's own, unclaimed, not being deleted."""
    labels = meta(pod).get("labels") or {}
    return (
        NAME_LABEL not in labels
        and controlled_by_pool(pod, pool)
        and not meta(pod).get("deletionTimestamp")
    )


def is_terminal(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def pod_ready(pod: Obj) -> bool:
    for cond in (pod.get("status") or {}).get("conditions") or ():
        if cond.get("type") == "Ready":
            return bool(cond.get("status") == "True")
    return False


def idle_candidates(pool: Obj, pods: Sequence[Obj]) -> list[Obj]:
    """The pool's standby Pods that can be claimed now (Ready, not exited), oldest first."""
    idle = [p for p in pods if is_standby(p, pool) and not is_terminal(p) and pod_ready(p)]
    return sorted(
        idle, key=lambda p: (str(meta(p).get("creationTimestamp") or ""), meta(p)["name"])
    )


def idle_timeout(kernel: Obj, settings: ReconcileSettings) -> int:
    """The idle timeout a kernel gets: its own, else the controller's default (0 = never)."""
    timeout = (kernel.get("spec") or {}).get("idleTimeoutSeconds")
    if timeout is None:
        timeout = settings.default_idle_timeout
    return int(timeout or 0)


def with_template(kernel: Obj, pool: Obj | None) -> Obj:
    """``kernel`` with the pool's Pod template when it has none of its own (a cold start of a
    Kernel that only names a pool)."""
    spec = kernel.get("spec") or {}
    if spec.get("template") or pool is None:
        return kernel
    template = (pool.get("spec") or {}).get("template") or {}
    return {**kernel, "spec": {**spec, "template": template}}


def pool_owner_reference(pool: Obj) -> dict[str, Any]:
    return controller_reference(pool, api_version=POOL_API_VERSION, kind=POOL_KIND)


def standby_pod_name(pool_name: str, suffix: str | None = None) -> str:
    """``<pool>-<5 random [a-z0-9]>``, at most 63 characters (the pool name is cut to fit)."""
    suffix = suffix or "".join(secrets.choice(NAME_SUFFIX_CHARS) for _ in range(NAME_SUFFIX_LENGTH))
    room = MAX_POD_NAME - len("-activation") - NAME_SUFFIX_LENGTH - 1
    return f"{pool_name[:room].rstrip('-')}-{suffix}"


def build_standby_pod(pool: Obj, *, name: str, settings: ReconcileSettings) -> dict[str, Any]:
    """A standby Pod of ``pool``: its template, the launcher told to wait for an activation
    on the activation port (its token from the Pod's own Secret), Ready once it waits."""
    m = meta(pool)
    template = (pool.get("spec") or {}).get("template") or {}
    template_meta = template.get("metadata") or {}
    spec: dict[str, Any] = thaw(template.get("spec") or {})
    main = spec["containers"][0]
    main["name"] = STANDBY_CONTAINER
    env = [e for e in main.get("env") or [] if e.get("name") not in _STANDBY_ENV]
    env.append({"name": ENV_ACTIVATION_PORT, "value": str(settings.activation_port)})
    env.append(
        {
            "name": ENV_ACTIVATION_TOKEN,
            "valueFrom": {
                "secretKeyRef": {
                    "name": activation_secret_name(name),
                    "key": ACTIVATION_TOKEN_FIELD,
                }
            },
        }
    )
    main["env"] = env
    # The kernel's ports are not bound before the activation: readiness is the activation
    # port accepting connections (the launcher opens it once its imports are done).
    main["readinessProbe"] = {
        "tcpSocket": {"port": settings.activation_port},
        "periodSeconds": 2,
        "failureThreshold": 3,
    }
    spec.setdefault("restartPolicy", "Never")
    labels = {**(template_meta.get("labels") or {}), POOL_LABEL: m.get("name", "")}
    labels.pop(NAME_LABEL, None)
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": m.get("namespace", ""),
        "labels": labels,
        "ownerReferences": [pool_owner_reference(pool)],
    }
    if template_meta.get("annotations"):
        metadata["annotations"] = dict(template_meta["annotations"])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


_STANDBY_ENV = frozenset(
    {
        ENV_ACTIVATION_PORT,
        ENV_ACTIVATION_TOKEN,
        "KERNEL_ID",
        "KERNEL_KEY",
        "KERNEL_SHELL_PORT",
        "KERNEL_IOPUB_PORT",
        "KERNEL_STDIN_PORT",
        "KERNEL_HB_PORT",
        "KERNEL_CONTROL_PORT",
        "KERNEL_IDLE_TIMEOUT",
    }
)


def build_activation_secret(pod: Obj, token: str) -> dict[str, Any]:
    """The standby Pod's token, in a Secret owned by the Pod (gone with it)."""
    m = meta(pod)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": activation_secret_name(m.get("name", "")),
            "namespace": m.get("namespace", ""),
            "ownerReferences": [controller_reference(pod, api_version="v1", kind="Pod")],
        },
        "stringData": {ACTIVATION_TOKEN_FIELD: token},
    }


def claim_patch(pod: Obj, kernel: Obj, owner: Mapping[str, Any]) -> dict[str, Any]:
    """The metadata merge patch that claims ``pod`` for ``kernel``: the Kernel's labels and
    ``jupyter.org/kernel-name`` (as on a Pod started for it), its controller ownerReference
    (the pool's replaced), guarded by the cached resourceVersion, so that of two claims of one
    Pod only one succeeds."""
    labels = {**(meta(kernel).get("labels") or {}), NAME_LABEL: meta(kernel).get("name", "")}
    labels.pop(POOL_LABEL, None)  # the Pod keeps its pool's label
    return {
        "metadata": {
            "resourceVersion": meta(pod).get("resourceVersion"),
            "labels": labels,
            "ownerReferences": [dict(owner)],
        }
    }
