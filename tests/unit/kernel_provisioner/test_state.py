"""Unit tests of ``kernel_provisioner.state``: launch progress and liveness from the caches."""

from __future__ import annotations

from typing import Any

import pytest

from kernel_provisioner.state import KILLED, Phase, exit_status, launch_state


def kernel(reason: str | None, *, status: str = "False", message: str = "why") -> dict[str, Any]:
    body: dict[str, Any] = {"metadata": {"name": "k", "uid": "kernel-uid"}}
    if reason is not None:
        body["status"] = {
            "conditions": [
                {"type": "Ready", "status": status, "reason": reason, "message": message}
            ]
        }
    return body


def pod(
    uid: str = "pod-1",
    *,
    ready: bool = False,
    phase: str = "Running",
    deleting: bool = False,
    terminated: int | None = None,
    waiting: str | None = None,
    unschedulable: bool = False,
) -> dict[str, Any]:
    state: dict[str, Any] = {"running": {"startedAt": "t"}}
    if terminated is not None:
        state = {"terminated": {"exitCode": terminated}}
    if waiting is not None:
        state = {"waiting": {"reason": waiting, "message": "no such host"}}
    conditions = [{"type": "Ready", "status": "True" if ready else "False"}]
    if unschedulable:
        conditions.append(
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "x"}
        )
    metadata: dict[str, Any] = {"name": "k", "uid": uid}
    if deleting:
        metadata["deletionTimestamp"] = "2026-12-02T00:00:00Z"
    return {
        "metadata": metadata,
        "status": {
            "phase": phase,
            "conditions": conditions,
            "containerStatuses": [{"name": "k", "state": state}],
        },
    }


def test_ready_needs_the_kernel_and_its_pod_ready() -> None:
    assert launch_state(kernel("KernelReady", status="True"), pod(ready=True)).phase is Phase.READY
    assert launch_state(kernel("KernelReady", status="True"), pod()).phase is Phase.PENDING
    assert launch_state(kernel("KernelReady", status="True"), None).phase is Phase.PENDING
    assert launch_state(kernel("PodPending"), pod(ready=True)).phase is Phase.PENDING


@pytest.mark.parametrize(
    "reason",
    ["ImagePullError", "Unschedulable", "KernelFailed", "PodCreationFailed", "InvalidPortEnv"],
)
def test_reasons_that_will_not_clear_fail_fast(reason: str) -> None:
    state = launch_state(kernel(reason, message="details"), None)
    assert (state.phase, state.reason) == (Phase.FAILED, reason)
    assert state.describe() == f"{reason}: details"


@pytest.mark.parametrize(
    "reason", ["PodNotCreated", "PodPending", "KernelNotReady", "PodTerminating", "PodNameConflict"]
)
def test_reasons_that_may_clear_keep_waiting(reason: str) -> None:
    assert launch_state(kernel(reason), None).phase is Phase.PENDING


def test_no_status_and_no_kernel() -> None:
    state = launch_state(kernel(None), None)
    assert state.phase is Phase.PENDING
    assert "is the kernel controller running?" in state.message
    assert launch_state(None, None).phase is Phase.GONE


def test_a_restart_ignores_the_replaced_pod_and_the_stale_status() -> None:
    stale = kernel("KernelFailed")  # the Pod being replaced had failed
    old = pod("old", phase="Failed", terminated=1)

    assert launch_state(stale, old, replacing_pod_uid="old").phase is Phase.PENDING
    assert launch_state(stale, None, replacing_pod_uid="old").phase is Phase.PENDING
    ready = kernel("KernelReady", status="True")
    assert launch_state(ready, pod("old", ready=True), replacing_pod_uid="old").phase is (
        Phase.PENDING
    )
    assert launch_state(ready, pod("new", ready=True), replacing_pod_uid="old").phase is (
        Phase.READY
    )


@pytest.mark.parametrize(
    ("new_pod", "reason"),
    [
        (pod("new", phase="Failed", terminated=3), "KernelFailed"),
        (pod("new", phase="Pending", waiting="ErrImagePull"), "ImagePullError"),
        (pod("new", phase="Pending", unschedulable=True), "Unschedulable"),
    ],
    ids=["crashed", "image", "unschedulable"],
)
def test_a_restart_reads_failures_from_the_new_pod(new_pod: Any, reason: str) -> None:
    state = launch_state(kernel("KernelReady", status="True"), new_pod, replacing_pod_uid="old")
    assert (state.phase, state.reason) == (Phase.FAILED, reason)


def test_exit_status() -> None:
    alive = pod("p", ready=True)
    assert exit_status(kernel("KernelReady"), alive, launched_pod_uid="p") is None
    assert exit_status(None, alive, launched_pod_uid="p") == 0  # culled or shut down
    assert exit_status(kernel("PodNotCreated"), None, launched_pod_uid="p") == KILLED
    assert exit_status(kernel("KernelReady"), pod("q"), launched_pod_uid="p") == KILLED
    assert exit_status(kernel("x"), pod("p", deleting=True), launched_pod_uid="p") == KILLED
    exited = pod("p", phase="Failed", terminated=3)
    assert exit_status(kernel("KernelFailed"), exited, launched_pod_uid="p") == 3
    done = pod("p", phase="Succeeded", terminated=0)
    assert exit_status(kernel("KernelExited"), done, launched_pod_uid="p") == 0
