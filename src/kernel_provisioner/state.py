"""What the cached Kernel and Pod say about a launched kernel. Pure.

- :func:`launch_state`: while launching, the Kernel is ``READY`` (its ``Ready`` condition is
  ``True`` and its Pod is Ready: the kernel listens), ``FAILED`` with the Kernel's reason when
  that reason will not clear by waiting (:data:`FAIL_FAST_REASONS`), ``GONE`` when the Kernel
  was deleted, else ``PENDING``. During a restart the Kernel's status may still describe the
  Pod being replaced, so a failure is read from the new Pod itself (:func:`pod_failure`),
  with the controller's reasons and wording.
- :func:`exit_status`: after the launch, ``None`` while the kernel that was launched (its Pod,
  by uid) still runs; else an exit code like a process's: the container's own exit code when
  it terminated, 0 when the Kernel is gone (culled or shut down), ``-9`` (killed) when its Pod
  was deleted or replaced.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reconcilers.model import meta

Obj = Mapping[str, Any]

FAIL_FAST_REASONS = frozenset(
    {"ImagePullError", "Unschedulable", "KernelFailed", "PodCreationFailed", "InvalidPortEnv"}
)
IMAGE_PULL_WAITING = frozenset(
    {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"}
)
KILLED = -9


class Phase(enum.Enum):
    PENDING = "pending"
    READY = "ready"
    FAILED = "failed"
    GONE = "gone"


@dataclass(frozen=True)
class LaunchState:
    phase: Phase
    reason: str = ""
    message: str = ""

    def describe(self) -> str:
        return f"{self.reason}: {self.message}" if self.message else self.reason


def ready_condition(kernel: Obj) -> Obj | None:
    for cond in (kernel.get("status") or {}).get("conditions") or ():
        if cond.get("type") == "Ready":
            return cond  # type: ignore[no-any-return]
    return None


def pod_ready(pod: Obj | None) -> bool:
    if pod is None or meta(pod).get("deletionTimestamp"):
        return False
    for cond in (pod.get("status") or {}).get("conditions") or ():
        if cond.get("type") == "Ready":
            return bool(cond.get("status") == "True")
    return False


def launch_state(
    kernel: Obj | None, pod: Obj | None, *, replacing_pod_uid: str = ""
) -> LaunchState:
    """The launch's progress. With ``replacing_pod_uid`` (a restart), that Pod never counts,
    and failures are read from the new Pod rather than from the Kernel's status."""
    if kernel is None:
        return LaunchState(Phase.GONE, "KernelDeleted", "the Kernel was deleted")
    ready = ready_condition(kernel)
    reason = str((ready or {}).get("reason") or "NoStatus")
    message = str((ready or {}).get("message") or "")
    if ready is None:
        message = "the Kernel has no status yet (is the kernel controller running?)"
    fresh = pod if pod is not None and meta(pod).get("uid") != replacing_pod_uid else None
    if replacing_pod_uid:
        failure = pod_failure(fresh) if fresh is not None else None
        if failure is not None:
            return LaunchState(Phase.FAILED, *failure)
    elif reason in FAIL_FAST_REASONS:
        return LaunchState(Phase.FAILED, reason, message)
    if ready is not None and ready.get("status") == "True" and pod_ready(fresh):
        return LaunchState(Phase.READY, reason, message)
    return LaunchState(Phase.PENDING, reason, message)


def pod_failure(pod: Obj) -> tuple[str, str] | None:
    """A reason that will not clear by waiting, read from the Pod, as the controller words it."""
    status = pod.get("status") or {}
    if status.get("phase") == "Failed":
        code = terminated_exit_code(pod)
        detail = f" with exit code {code}" if code is not None else ""
        return "KernelFailed", f"the kernel failed{detail}"
    for container in status.get("containerStatuses") or ():
        waiting = (container.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in IMAGE_PULL_WAITING:
            pulling = waiting.get("message") or waiting.get("reason")
            return "ImagePullError", f"cannot pull the kernel image: {pulling}"
    for cond in status.get("conditions") or ():
        if cond.get("type") == "PodScheduled" and cond.get("reason") == "Unschedulable":
            scheduling = cond.get("message") or "no node fits the Pod"
            return "Unschedulable", f"the kernel's Pod cannot be scheduled: {scheduling}"
    return None


def exit_status(kernel: Obj | None, pod: Obj | None, *, launched_pod_uid: str) -> int | None:
    """``None`` while the launched kernel runs, else its exit code (module docstring)."""
    if kernel is None:
        return 0
    if pod is None or meta(pod).get("uid") != launched_pod_uid:
        return KILLED
    code = terminated_exit_code(pod)
    if code is not None:
        return code
    if meta(pod).get("deletionTimestamp"):
        return KILLED
    phase = (pod.get("status") or {}).get("phase")
    if phase == "Succeeded":
        return 0
    if phase == "Failed":
        return 1
    return None


def terminated_exit_code(pod: Obj) -> int | None:
    """The kernel container's exit code once it terminated (the controller names that
    container after the Kernel, which is also the Pod's name)."""
    statuses = list((pod.get("status") or {}).get("containerStatuses") or ())
    mine = [s for s in statuses if s.get("name") == meta(pod).get("name")] or statuses[:1]
    for status in mine:
        terminated = (status.get("state") or {}).get("terminated")
        if terminated is not None:
            code = terminated.get("exitCode")
            return int(code) if isinstance(code, int) else 1
    return None
