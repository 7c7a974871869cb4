"""The ``status`` the local node writes for a Pod, built from what it observed. Pure functions.

Every timestamp passed in is a real instant (RFC 3339, UTC, seconds) recorded when the node
saw it happen; none is made up, and the same observation always gives the same status, so an
unchanged status is never written twice (:func:`needs_write`).

- running (not yet ready): ``phase: Running``, ``hostIP(s)`` 127.0.0.1, ``podIP(s)``,
  ``startTime``, conditions ``PodScheduled``/``Initialized`` True, ``ContainersReady``/``Ready``
  False (``ContainersNotReady``), ``containerStatuses[0]``: ``{name, image, imageID: "",
  containerID: localnode://<pid>, ready: false, started: true, restartCount: 0,
  state.running.startedAt}``;
- running and ready: the same with ``ContainersReady``/``Ready`` True and ``ready: true``;
- terminated: ``phase: Succeeded`` (exit 0) or ``Failed``, ``ContainersReady``/``Ready`` False
  (``PodCompleted``), ``state.terminated {exitCode, reason: Completed|Error|StartError|
  ContainerStatusUnknown, message?, startedAt, finishedAt}``;
- pending: ``phase: Pending``, ``state.waiting {reason, message}`` (the container could not be
  created yet, e.g. a missing Secret, or its image cannot be pulled);
- unschedulable (the node plays the scheduler): ``phase: Pending``, condition ``PodScheduled``
  False with reason ``Unschedulable`` and the scheduler's message.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from localnode.ipam import HOST_IP
from localnode.podspec import Pod, main_container

Status = dict[str, Any]


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Exit:
    """How the container ended."""

    code: int
    reason: str  # Completed, Error, StartError or ContainerStatusUnknown
    finished_at: str
    message: str = ""


def exit_reason(code: int) -> str:
    return "Completed" if code == 0 else "Error"


def pending_status(pod: Pod, *, start_time: str, reason: str, message: str) -> Status:
    waiting = {"reason": reason, "message": message}
    return _status(
        pod,
        phase="Pending",
        pod_ip="",
        start_time=start_time,
        ready_since=None,
        ready_false=("ContainersNotReady", _not_ready_message(pod)),
        container=_container(pod, ready=False, started=False, state={"waiting": waiting}),
    )


def unschedulable_status(*, message: str, since: str) -> Status:
    """What the scheduler writes on a Pod that no node fits."""
    return {
        "phase": "Pending",
        "conditions": [
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": message,
                "lastTransitionTime": since,
            }
        ],
    }


def running_status(
    pod: Pod,
    *,
    pod_ip: str,
    start_time: str,
    started_at: str,
    ready_since: str | None,
    container_id: str,
) -> Status:
    ready = ready_since is not None
    return _status(
        pod,
        phase="Running",
        pod_ip=pod_ip,
        start_time=start_time,
        ready_since=ready_since,
        ready_false=("ContainersNotReady", _not_ready_message(pod)),
        container=_container(
            pod,
            ready=ready,
            started=True,
            state={"running": {"startedAt": started_at}},
            container_id=container_id,
        ),
    )


def terminated_status(
    pod: Pod,
    *,
    pod_ip: str,
    start_time: str,
    started_at: str,
    exit: Exit,
    container_id: str,
) -> Status:
    terminated: dict[str, Any] = {"exitCode": exit.code, "reason": exit.reason}
    if started_at:
        terminated["startedAt"] = started_at
    terminated["finishedAt"] = exit.finished_at
    if exit.message:
        terminated["message"] = exit.message
    if container_id:
        terminated["containerID"] = container_id
    return _status(
        pod,
        phase="Succeeded" if exit.code == 0 else "Failed",
        pod_ip=pod_ip,
        start_time=start_time,
        ready_since=None,
        ready_false=("PodCompleted", ""),
        ready_false_since=exit.finished_at,
        container=_container(
            pod,
            ready=False,
            started=False,
            state={"terminated": terminated},
            container_id=container_id,
        ),
    )


def needs_write(current: Mapping[str, Any] | None, desired: Mapping[str, Any]) -> bool:
    """Whether ``current`` (the stored status) lacks anything of ``desired``.

    Fields the API server adds (or keeps from others) are ignored; ``None`` and empty values
    in ``desired`` match a missing field.
    """
    return not _covers(current, desired)


def _covers(current: object, desired: object) -> bool:
    if desired is None:
        return True
    if desired in ({}, []):
        return current in (None, {}, [])
    if isinstance(desired, Mapping):
        if not isinstance(current, Mapping):
            return False
        return all(_covers(current.get(key), value) for key, value in desired.items())
    if isinstance(desired, list):
        if not isinstance(current, list) or len(current) != len(desired):
            return False
        return all(_covers(c, d) for c, d in zip(current, desired, strict=True))
    return current == desired


def _not_ready_message(pod: Pod) -> str:
    return f"containers with unready status: [{main_container(pod).get('name') or ''}]"


def _container(
    pod: Pod,
    *,
    ready: bool,
    started: bool,
    state: dict[str, Any],
    container_id: str = "",
) -> dict[str, Any]:
    container = main_container(pod)
    status: dict[str, Any] = {
        "name": container.get("name") or "",
        "image": container.get("image") or "",
        "imageID": "",
        "ready": ready,
        "restartCount": 0,
        "started": started,
        "state": state,
        "lastState": {},
    }
    if container_id:
        status["containerID"] = container_id
    return status


def _status(
    pod: Pod,
    *,
    phase: str,
    pod_ip: str,
    start_time: str,
    ready_since: str | None,
    ready_false: tuple[str, str],
    container: dict[str, Any],
    ready_false_since: str | None = None,
) -> Status:
    scheduled_at = _scheduled_at(pod) or start_time
    if ready_since is not None:
        ready = _condition("True", ready_since)
    else:
        reason, message = ready_false
        ready = _condition("False", ready_false_since or start_time, reason, message)
    status: Status = {
        "phase": phase,
        "conditions": [
            _condition("True", scheduled_at, type_="PodScheduled"),
            _condition("True", start_time, type_="Initialized"),
            {**ready, "type": "ContainersReady"},
            {**ready, "type": "Ready"},
        ],
        "hostIP": HOST_IP,
        "hostIPs": [{"ip": HOST_IP}],
        "startTime": start_time,
        "containerStatuses": [container],
    }
    if pod_ip:
        status["podIP"] = pod_ip
        status["podIPs"] = [{"ip": pod_ip}]
    return status


def _condition(
    status: str, since: str, reason: str = "", message: str = "", *, type_: str = ""
) -> dict[str, Any]:
    condition: dict[str, Any] = {"status": status}
    if type_:
        condition["type"] = type_
    condition["lastTransitionTime"] = since
    if reason:
        condition["reason"] = reason
    if message:
        condition["message"] = message
    return condition


def _scheduled_at(pod: Pod) -> str | None:
    """When the API server recorded the binding (``PodScheduled`` True), if it did."""
    for condition in (pod.get("status") or {}).get("conditions") or ():
        if condition.get("type") == "PodScheduled" and condition.get("status") == "True":
            since = condition.get("lastTransitionTime")
            return str(since) if since else None
    return None
