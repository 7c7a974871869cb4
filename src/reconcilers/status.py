"""The Kernel's status, derived from its Pod (pure; no clock: every timestamp is copied from
the Pod, none is made up).

``Ready`` is always present: ``True`` only when the Pod's Ready condition is ``True``;
otherwise ``False`` with a reason a user can act on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from informers import thaw
from reconcilers.model import Identity, KeyMode, Obj, meta, secret_name

IMAGE_PULL_REASONS = frozenset(
    {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"}
)


@dataclass(frozen=True)
class Readiness:
    """The Kernel's Ready condition before timestamps are attached."""

    status: str
    reason: str
    message: str


def pod_condition(pod: Obj, kind: str) -> Obj | None:
    for cond in (pod.get("status") or {}).get("conditions") or ():
        if cond.get("type") == kind:
            return cond  # type: ignore[no-any-return]
    return None


def kernel_container_status(pod: Obj, container_name: str) -> Obj | None:
    statuses = (pod.get("status") or {}).get("containerStatuses") or ()
    for status in statuses:
        if status.get("name") == container_name:
            return status  # type: ignore[no-any-return]
    return statuses[0] if statuses else None


def terminated_state(pod: Obj, container_name: str) -> Obj | None:
    status = kernel_container_status(pod, container_name)
    if status is None:
        return None
    return (status.get("state") or {}).get("terminated")


def readiness(pod: Obj | None, *, container_name: str) -> Readiness:
    """Why the kernel is, or is not, ready, judged from its Pod alone."""
    if pod is None:
        return Readiness("False", "PodNotCreated", "the kernel's Pod does not exist yet")
    if meta(pod).get("deletionTimestamp"):
        return Readiness(
            "False",
            "PodTerminating",
            "the kernel's Pod is being deleted; a new one is created once it is gone",
        )
    phase = (pod.get("status") or {}).get("phase") or "Pending"
    ready = pod_condition(pod, "Ready")
    if ready is not None and ready.get("status") == "True":
        return Readiness("True", "KernelReady", "the kernel accepts connections")
    if phase == "Succeeded":
        return Readiness("False", "KernelExited", "the kernel exited on purpose (exit code 0)")
    if phase == "Failed":
        return Readiness("False", "KernelFailed", failure_message(pod, container_name))
    if phase == "Unknown":
        return Readiness("False", "PodUnknown", "the state of the kernel's Pod is unknown")
    container = kernel_container_status(pod, container_name)
    waiting = ((container or {}).get("state") or {}).get("waiting") or {}
    if waiting.get("reason") in IMAGE_PULL_REASONS:
        detail = waiting.get("message") or waiting.get("reason")
        return Readiness("False", "ImagePullError", f"cannot pull the kernel image: {detail}")
    scheduled = pod_condition(pod, "PodScheduled")
    if scheduled is not None and scheduled.get("reason") == "Unschedulable":
        detail = scheduled.get("message") or "no node fits the Pod"
        return Readiness(
            "False", "Unschedulable", f"the kernel's Pod cannot be scheduled: {detail}"
        )
    if phase == "Running":
        detail = (ready or {}).get("message") or "the kernel does not accept connections yet"
        return Readiness("False", "KernelNotReady", detail)
    detail = waiting.get("reason") or "waiting to be scheduled and started"
    return Readiness("False", "PodPending", f"the kernel's Pod is pending: {detail}")


def failure_message(pod: Obj, container_name: str) -> str:
    terminated = terminated_state(pod, container_name) or {}
    parts = ["the kernel failed"]
    if "exitCode" in terminated:
        parts.append(f"with exit code {terminated['exitCode']}")
    reason = terminated.get("reason") or (pod.get("status") or {}).get("reason")
    if reason:
        parts.append(f"({reason})")
    message = terminated.get("message") or (pod.get("status") or {}).get("message")
    text = " ".join(parts)
    return f"{text}: {message}" if message else text


def failed_at(pod: Obj, container_name: str) -> str | None:
    """When the kernel failed, as the Pod reports it (RFC 3339), for the failed-Kernel TTL."""
    terminated = terminated_state(pod, container_name) or {}
    if terminated.get("finishedAt"):
        return str(terminated["finishedAt"])
    ready = pod_condition(pod, "Ready")
    if ready is not None and ready.get("lastTransitionTime"):
        return str(ready["lastTransitionTime"])
    created = meta(pod).get("creationTimestamp")
    return str(created) if created else None


def _mirrored(cond: Obj) -> dict[str, Any]:
    out: dict[str, Any] = {"type": cond.get("type", ""), "status": cond.get("status", "Unknown")}
    for key in ("reason", "message", "lastTransitionTime", "lastProbeTime"):
        if cond.get(key):
            out[key] = cond[key]
    return out


def conditions(pod: Obj | None, ready: Readiness) -> list[dict[str, Any]]:
    """The Pod's conditions mirrored, with ``Ready`` replaced by the Kernel's own."""
    mirrored: list[dict[str, Any]] = []
    pod_ready: Obj | None = None
    for cond in ((pod or {}).get("status") or {}).get("conditions") or ():
        if cond.get("type") == "Ready":
            pod_ready = cond
            continue
        mirrored.append(_mirrored(cond))
    kernel_ready: dict[str, Any] = {
        "type": "Ready",
        "status": ready.status,
        "reason": ready.reason,
        "message": ready.message,
    }
    if pod_ready is not None and pod_ready.get("lastTransitionTime"):
        kernel_ready["lastTransitionTime"] = pod_ready["lastTransitionTime"]
    return [kernel_ready, *mirrored]


def kernel_status(
    *,
    kernel: Obj,
    pod: Obj | None,
    identity: Identity | None,
    host: str,
    key_mode: KeyMode,
    ready: Readiness,
) -> dict[str, Any]:
    """The whole desired ``status`` of ``kernel``."""
    name = meta(kernel).get("name", "")
    status: dict[str, Any] = {
        "conditions": conditions(pod, ready),
        "readyReplicas": 1 if ready.status == "True" else 0,
    }
    pod_status: Mapping[str, Any] = (pod or {}).get("status") or {}
    if pod is not None:
        status["phase"] = pod_status.get("phase") or "Pending"
    if pod_status.get("podIP"):
        status["podIP"] = pod_status["podIP"]
    if identity is not None:
        status["kernelID"] = identity.kernel_id
        connection: dict[str, Any] = {
            "host": host,
            "shellPort": identity.ports.shell,
            "iopubPort": identity.ports.iopub,
            "stdinPort": identity.ports.stdin,
            "hbPort": identity.ports.hb,
            "controlPort": identity.ports.control,
            "transport": "tcp",
            "signatureScheme": "hmac-sha256",
        }
        if key_mode is KeyMode.SECRET:
            connection["keySecret"] = secret_name(name)
        status["connection"] = connection
    if pod is not None:
        container = kernel_container_status(pod, name)
        if container is not None and container.get("state"):
            status["containerState"] = thaw(container["state"])
    generation = meta(kernel).get("generation")
    if generation is not None:
        status["observedGeneration"] = generation
    return status


def merge_patch(current: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON merge patch (RFC 7386) that turns ``current`` into ``desired``; ``{}`` when
    they are equal. Keys that must disappear become ``null``; lists are replaced whole."""
    patch: dict[str, Any] = {}
    for key, want in desired.items():
        have = current.get(key)
        if isinstance(want, Mapping) and isinstance(have, Mapping):
            sub = merge_patch(have, want)
            if sub:
                patch[key] = sub
        elif have != want or key not in current:
            patch[key] = want
    for key in current:
        if key not in desired:
            patch[key] = None
    return patch
