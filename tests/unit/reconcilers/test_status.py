"""Unit tests of ``reconcilers.status``: merge patches, readiness and the failure time."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from informers import freeze
from reconcilers.status import Readiness, failed_at, merge_patch, readiness

NAME = "nb"
CREATED = "2025-03-04T11:00:00Z"
READY_CHANGED = "2025-03-04T11:20:00Z"
FINISHED = "2025-03-04T11:30:00Z"


def apply_merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 section 2, as the API server applies a merge patch."""
    if not isinstance(patch, Mapping):
        return patch
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = apply_merge_patch(result.get(key), value)
    return result


READY = {"type": "Ready", "status": "True", "reason": "KernelReady"}
NOT_READY = {"type": "Ready", "status": "False", "reason": "PodPending"}

MERGE_CASES: dict[str, tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = {
    # id: (current, desired, expected patch)
    "equal": (
        {"phase": "Running", "connection": {"host": "h", "shellPort": 1}, "conditions": [READY]},
        {"phase": "Running", "connection": {"host": "h", "shellPort": 1}, "conditions": [READY]},
        {},
    ),
    "both-empty": ({}, {}, {}),
    "changed-scalar": (
        {"phase": "Pending", "podIP": "1"},
        {"phase": "Running", "podIP": "1"},
        {"phase": "Running"},
    ),
    "added-key": (
        {"phase": "Running"},
        {"phase": "Running", "podIP": "10.0.0.1"},
        {"podIP": "10.0.0.1"},
    ),
    "key-removed-at-top": (
        {"phase": "Running", "podIP": "10.0.0.1"},
        {"phase": "Running"},
        {"podIP": None},
    ),
    "nested-change": (
        {"connection": {"host": "h", "shellPort": 1}},
        {"connection": {"host": "h", "shellPort": 2}},
        {"connection": {"shellPort": 2}},
    ),
    "nested-removal": (
        {"containerState": {"running": {"startedAt": CREATED}}},
        {"containerState": {}},
        {"containerState": {"running": None}},
    ),
    "deep-nested-removal": (
        {"connection": {"host": "h", "keySecret": "nb-connection"}},
        {"connection": {"host": "h"}},
        {"connection": {"keySecret": None}},
    ),
    "list-replaced-whole": (
        {"conditions": [NOT_READY, {"type": "PodScheduled", "status": "True"}]},
        {"conditions": [READY, {"type": "PodScheduled", "status": "True"}]},
        {"conditions": [READY, {"type": "PodScheduled", "status": "True"}]},
    ),
    "list-shortened": (
        {"conditions": [READY, {"type": "PodScheduled", "status": "True"}]},
        {"conditions": [READY]},
        {"conditions": [READY]},
    ),
    "mapping-replaces-scalar": (
        {"containerState": "x"},
        {"containerState": {"waiting": {}}},
        {"containerState": {"waiting": {}}},
    ),
    "scalar-replaces-mapping": (
        {"containerState": {"waiting": {}}},
        {"containerState": "x"},
        {"containerState": "x"},
    ),
    "from-nothing": (
        {},
        {"readyReplicas": 0, "conditions": [NOT_READY]},
        {
            "readyReplicas": 0,
            "conditions": [NOT_READY],
        },
    ),
    "zero-and-false-are-values": ({"readyReplicas": 1}, {"readyReplicas": 0}, {"readyReplicas": 0}),
}


@pytest.mark.parametrize(
    ("current", "desired", "expected"), list(MERGE_CASES.values()), ids=list(MERGE_CASES)
)
def test_merge_patch(
    current: dict[str, Any], desired: dict[str, Any], expected: dict[str, Any]
) -> None:
    patch = merge_patch(freeze(current), desired)

    assert patch == expected
    assert apply_merge_patch(current, patch) == desired


def test_merge_patch_of_a_frozen_copy_is_empty() -> None:
    status = {"conditions": [READY], "connection": {"host": "h"}, "readyReplicas": 1}

    assert merge_patch(freeze(status), status) == {}


# ------------------------------------------------------------------------------ readiness
def pod(
    phase: str | None = None,
    *,
    conditions: tuple[Mapping[str, Any], ...] = (),
    statuses: tuple[Mapping[str, Any], ...] = (),
    **status: Any,
) -> Any:
    body: dict[str, Any] = dict(status)
    if phase is not None:
        body["phase"] = phase
    if conditions:
        body["conditions"] = [dict(c) for c in conditions]
    if statuses:
        body["containerStatuses"] = [dict(s) for s in statuses]
    return freeze({"metadata": {"name": NAME, "creationTimestamp": CREATED}, "status": body})


def waiting(reason: str, message: str | None = None, *, name: str = NAME) -> dict[str, Any]:
    state: dict[str, Any] = {"reason": reason}
    if message is not None:
        state["message"] = message
    return {"name": name, "ready": False, "state": {"waiting": state}}


def terminated(
    code: int,
    reason: str,
    message: str | None = None,
    *,
    name: str = NAME,
    finished: str = FINISHED,
) -> dict[str, Any]:
    state: dict[str, Any] = {"exitCode": code, "reason": reason, "finishedAt": finished}
    if message is not None:
        state["message"] = message
    return {"name": name, "ready": False, "state": {"terminated": state}}


RUNNING = {"name": NAME, "ready": False, "state": {"running": {"startedAt": CREATED}}}
READY_TRUE = {"type": "Ready", "status": "True", "lastTransitionTime": READY_CHANGED}

READINESS_CASES: dict[str, tuple[Any, Readiness]] = {
    "no-pod": (None, Readiness("False", "PodNotCreated", "the kernel's Pod does not exist yet")),
    "no-status-yet": (
        pod(),
        Readiness(
            "False",
            "PodPending",
            "the kernel's Pod is pending: waiting to be scheduled and started",
        ),
    ),
    "container-creating": (
        pod("Pending", statuses=(waiting("ContainerCreating"),)),
        Readiness("False", "PodPending", "the kernel's Pod is pending: ContainerCreating"),
    ),
    "invalid-image-name": (
        pod("Pending", statuses=(waiting("InvalidImageName", 'couldn\'t parse "A:B:C"'),)),
        Readiness(
            "False", "ImagePullError", 'cannot pull the kernel image: couldn\'t parse "A:B:C"'
        ),
    ),
    "never-pull-without-message": (
        pod("Pending", statuses=(waiting("ErrImageNeverPull"),)),
        Readiness("False", "ImagePullError", "cannot pull the kernel image: ErrImageNeverPull"),
    ),
    "sidecar-pull-error-is-not-ours": (
        pod("Pending", statuses=(waiting("ErrImagePull", "x", name="proxy"), waiting("Foo"))),
        Readiness("False", "PodPending", "the kernel's Pod is pending: Foo"),
    ),
    "unschedulable-without-message": (
        pod(
            "Pending",
            conditions=({"type": "PodScheduled", "status": "False", "reason": "Unschedulable"},),
        ),
        Readiness(
            "False", "Unschedulable", "the kernel's Pod cannot be scheduled: no node fits the Pod"
        ),
    ),
    "running-no-ready-condition": (
        pod("Running", statuses=(RUNNING,)),
        Readiness("False", "KernelNotReady", "the kernel does not accept connections yet"),
    ),
    "running-ready": (
        pod("Running", conditions=(READY_TRUE,), statuses=({**RUNNING, "ready": True},)),
        Readiness("True", "KernelReady", "the kernel accepts connections"),
    ),
    "succeeded": (
        pod("Succeeded", statuses=(terminated(0, "Completed"),)),
        Readiness("False", "KernelExited", "the kernel exited on purpose (exit code 0)"),
    ),
    "failed-oom": (
        pod("Failed", statuses=(terminated(137, "OOMKilled"),)),
        Readiness("False", "KernelFailed", "the kernel failed with exit code 137 (OOMKilled)"),
    ),
    "failed-with-message": (
        pod("Failed", statuses=(terminated(1, "Error", "Traceback: boom"),)),
        Readiness(
            "False", "KernelFailed", "the kernel failed with exit code 1 (Error): Traceback: boom"
        ),
    ),
    "evicted": (
        pod("Failed", reason="Evicted", message="The node was low on resource: memory."),
        Readiness(
            "False",
            "KernelFailed",
            "the kernel failed (Evicted): The node was low on resource: memory.",
        ),
    ),
    "unknown": (
        pod("Unknown"),
        Readiness("False", "PodUnknown", "the state of the kernel's Pod is unknown"),
    ),
}


@pytest.mark.parametrize(
    ("the_pod", "expected"), list(READINESS_CASES.values()), ids=list(READINESS_CASES)
)
def test_readiness(the_pod: Any, expected: Readiness) -> None:
    assert readiness(the_pod, container_name=NAME) == expected


# ------------------------------------------------------------------------------ failed_at
READY_FALSE = {"type": "Ready", "status": "False", "lastTransitionTime": READY_CHANGED}

FAILED_AT_CASES: dict[str, tuple[Any, str | None]] = {
    "container-finished-at": (
        pod("Failed", conditions=(READY_FALSE,), statuses=(terminated(1, "Error"),)),
        FINISHED,
    ),
    "named-container-not-sidecar": (
        pod(
            "Failed",
            statuses=(
                terminated(2, "Error", name="proxy", finished="2025-03-04T11:10:00Z"),
                terminated(1, "Error"),
            ),
        ),
        FINISHED,
    ),
    "first-container-when-name-unknown": (
        pod("Failed", statuses=(terminated(1, "Error", name="renamed"),)),
        FINISHED,
    ),
    "ready-transition-without-termination": (
        pod("Failed", conditions=(READY_FALSE,), statuses=(RUNNING,)),
        READY_CHANGED,
    ),
    "creation-time-as-last-resort": (pod("Failed", reason="Evicted"), CREATED),
    "nothing-known": (freeze({"status": {"phase": "Failed"}}), None),
}


@pytest.mark.parametrize(
    ("the_pod", "expected"), list(FAILED_AT_CASES.values()), ids=list(FAILED_AT_CASES)
)
def test_failed_at(the_pod: Any, expected: str | None) -> None:
    assert failed_at(the_pod, NAME) == expected
