"""What a Kernel's world should look like: a pure function of the Kernel, its cached children
and the controller's settings.

``desired_state`` does no I/O and reads no clock or randomness: the current time and fresh
random values are passed in. It never mutates its inputs (they are frozen cache objects) and
returns plain, new dicts. The applier (``apply.py``) compares the result with the cache and
writes only what differs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from informers import thaw
from reconcilers.model import (
    CONNECTION_INFO_ANNOTATION,
    ENV_IDLE_TIMEOUT,
    ENV_KERNEL_ID,
    ENV_KERNEL_KEY,
    KERNEL_ID_ANNOTATION,
    NAME_LABEL,
    SECRET_KEY_FIELD,
    Fresh,
    Identity,
    KernelPorts,
    KeyMode,
    Obj,
    ReconcileSettings,
    connection_info_json,
    controlled_by,
    meta,
    owner_reference,
    pool_of,
    pool_ref,
    secret_name,
    service_host,
)
from reconcilers.pooled import activated_for, idle_timeout, with_template
from reconcilers.status import Readiness, failed_at, kernel_status, readiness


@dataclass(frozen=True)
class Observed:
    """The cached objects named like the Kernel (owned by it or not), and for a Kernel that
    names a pool, the pool and its idle standby Pods (the best candidate first)."""

    pod: Obj | None = None
    service: Obj | None = None
    pod_warnings: Sequence[Obj] = ()  # Warning Events of the Pod not re-issued yet
    pool: Obj | None = None
    standby: Sequence[Obj] = ()
    surplus_pods: Sequence[Obj] = ()  # more Pods controlled by the Kernel (to delete)
    # Kinds ("pod", "service") this process created and its cache did not show yet, read
    # *before* the cache (as client-go's controllers check their expectations first): a
    # creation the cache shows clears its expectation only after the cache has the object,
    # so an expectation seen cleared here means the cache reads below are current.
    awaiting: frozenset[str] = frozenset()


@dataclass(frozen=True)
class EventSpec:
    """An Event to record on the Kernel."""

    type: str  # Normal or Warning
    reason: str
    message: str


@dataclass(frozen=True)
class Desired:
    """Everything the applier should make true for one Kernel."""

    identity: Identity | None
    annotations: dict[str, str] | None = None  # metadata patch, when the decision is new
    pod: dict[str, Any] | None = None  # to create
    secret: dict[str, Any] | None = field(default=None, repr=False)  # to create with the Pod
    service: dict[str, Any] | None = None  # to create, or the fields we own to correct
    status: dict[str, Any] = field(default_factory=dict)
    delete_kernel: bool = False
    requeue_after: float | None = None
    events: tuple[EventSpec, ...] = ()
    became_ready_after: float | None = None  # seconds from creation, on the first Ready=True
    pod_warnings: tuple[Obj, ...] = ()  # to re-issue on the Kernel
    # Warm pools: the pool named by the Kernel; standby Pods to try to claim, in order, before
    # creating ``pod`` (a cold start); a claimed Pod to activate, with this key and idle
    # timeout; where the kernel that became Ready came from ("pool" or "cold"); surplus Pods
    # of the Kernel to delete, as (name, uid).
    pool: str | None = None
    claim: tuple[str, ...] = ()
    activate: str | None = None
    delete_pods: tuple[tuple[str, str], ...] = ()
    activation_key: str = field(default="", repr=False)
    idle_timeout: int = 0
    ready_source: str = "cold"


class InvalidKernel(ValueError):
    """The Kernel asks for something only the controller can see is impossible."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _containers(kernel: Obj) -> Sequence[Obj]:
    spec = ((kernel.get("spec") or {}).get("template") or {}).get("spec") or {}
    containers: Sequence[Obj] = spec.get("containers") or ()
    return containers


def _env(container: Obj) -> dict[str, Obj]:
    return {e.get("name", ""): e for e in container.get("env") or ()}


def decide_identity(
    kernel: Obj, *, settings: ReconcileSettings, fresh: Fresh
) -> tuple[Identity, bool]:
    """The kernel's id, ports and key, and whether they are new (to be persisted).

    Annotations written by an earlier pass win; otherwise the container's env (the id also
    from the annotation ``jupyter.org/kernel-id`` alone, as its creator may set it), else the
    controller's defaults and the fresh random values. Raises :class:`InvalidKernel` when a
    port is given in a way the controller cannot read (``valueFrom``).
    """
    annotations = meta(kernel).get("annotations") or {}
    persisted = _persisted_identity(annotations, settings)
    if persisted is not None:
        return persisted, False

    containers = _containers(kernel)
    env = _env(containers[0]) if containers else {}
    ports: dict[str, int] = {}
    for attr, name in KernelPorts.ENV:
        entry = env.get(name)
        if entry is None:
            ports[attr] = getattr(settings.default_ports, attr)
        elif "value" in entry and str(entry["value"]).isdigit():
            ports[attr] = int(entry["value"])
        else:
            raise InvalidKernel(
                "InvalidPortEnv",
                f"{name} must be a literal integer value in containers[0].env "
                "(valueFrom cannot be resolved by the controller)",
            )
    id_entry = env.get(ENV_KERNEL_ID)
    kernel_id = str(id_entry.get("value") or "") if id_entry is not None else ""
    # A Kernel without a template (it names a pool) may ask for its id by the annotation.
    kernel_id = kernel_id or str(annotations.get(KERNEL_ID_ANNOTATION) or "") or fresh.kernel_id
    key = kernel_id if settings.key_mode is KeyMode.KERNEL_ID else fresh.key
    return Identity(kernel_id=kernel_id, ports=KernelPorts(**ports), key=key), True


def _persisted_identity(
    annotations: Mapping[str, str], settings: ReconcileSettings
) -> Identity | None:
    kernel_id = annotations.get(KERNEL_ID_ANNOTATION)
    raw = annotations.get(CONNECTION_INFO_ANNOTATION)
    if not kernel_id or not raw:
        return None
    try:
        info = json.loads(raw)
        ports = KernelPorts(
            shell=int(info["shell_port"]),
            iopub=int(info["iopub_port"]),
            stdin=int(info["stdin_port"]),
            hb=int(info["hb_port"]),
            control=int(info["control_port"]),
        )
    except (ValueError, KeyError, TypeError):
        return None  # edited by hand into something unreadable: decide again
    key = str(info.get("key") or "")
    if settings.key_mode is KeyMode.KERNEL_ID and not key:
        key = kernel_id
    return Identity(kernel_id=kernel_id, ports=ports, key=key)


def desired_state(
    *,
    kernel: Obj,
    observed: Observed,
    settings: ReconcileSettings,
    fresh: Fresh,
    now: datetime,
) -> Desired:
    """What should exist for ``kernel``; see the module docstring."""
    m = meta(kernel)
    name = m.get("name", "")
    namespace = m.get("namespace", "")
    host = service_host(name=name, namespace=namespace, cluster_domain=settings.cluster_domain)
    warnings = tuple(observed.pod_warnings)

    def status(identity: Identity | None, ready: Readiness, pod: Obj | None) -> dict[str, Any]:
        return kernel_status(
            kernel=kernel,
            pod=pod,
            identity=identity,
            host=host,
            key_mode=settings.key_mode,
            ready=ready,
        )

    try:
        identity, new_identity = decide_identity(kernel, settings=settings, fresh=fresh)
    except InvalidKernel as err:
        ready = Readiness("False", err.reason, str(err))
        return Desired(
            identity=None,
            status=status(None, ready, None),
            events=_transition_event(kernel, ready),
        )

    annotations = None
    if new_identity:
        annotations = {
            KERNEL_ID_ANNOTATION: identity.kernel_id,
            CONNECTION_INFO_ANNOTATION: connection_info_json(
                identity=identity,
                host=host,
                include_key=settings.key_mode is KeyMode.KERNEL_ID,
            ),
        }

    pod, service = observed.pod, observed.service
    if pod is not None and not controlled_by(pod, kernel):
        ready = Readiness(
            "False",
            "PodNameConflict",
            f"a Pod named {name} exists and is not controlled by this Kernel; delete or rename it",
        )
        return _blocked(kernel, identity, annotations, status(identity, ready, None), ready)
    if service is not None and not controlled_by(service, kernel):
        ready = Readiness(
            "False",
            "ServiceNameConflict",
            f"a Service named {name} exists and is not controlled by this Kernel; "
            "delete or rename it",
        )
        return _blocked(kernel, identity, annotations, status(identity, ready, pod), ready)

    ready = readiness(pod, container_name=name)
    desired_service = build_service(kernel, identity)
    pool_name = pool_ref(kernel)
    activate, ready = _activation(pod, identity, ready)
    if pod is None and pool_name is not None and observed.pool is None:
        missing = Readiness(
            "False", "PoolNotFound", f"KernelPool {pool_name} does not exist in {namespace}"
        )
        return Desired(
            identity=identity,
            annotations=annotations,
            service=desired_service,
            status=status(identity, missing, None),
            pool=pool_name,
        )
    new_pod = new_secret = None
    # A persisted identity has no key in secret mode ("" - it lives only in the Secret). The
    # Secret is created only when missing (an existing one keeps its key), so a missing one
    # gets a fresh key, never an empty one. A standby kernel is activated with that key.
    key = identity.key or fresh.key
    if pod is None:
        new_pod = build_pod(with_template(kernel, observed.pool), identity, settings)
    if (pod is None or activate is not None) and settings.key_mode is KeyMode.SECRET:
        new_secret = build_secret(kernel, replace(identity, key=key))

    # A Pod being deleted (a restart, `kubectl delete pod`) is replaced once it is gone: how
    # its kernel ended says nothing about the Kernel, which is neither culled nor failed.
    terminating = pod is not None and bool(meta(pod).get("deletionTimestamp"))
    phase = None if terminating else ((pod or {}).get("status") or {}).get("phase")
    delete_kernel = False
    requeue_after = None
    events = list(_transition_event(kernel, ready))
    if phase == "Succeeded":
        delete_kernel = True
        events = [EventSpec("Normal", "Culled", "the kernel exited after being idle; deleting")]
    elif phase == "Failed" and pod is not None:
        remaining = _ttl_remaining(pod, name, settings.failed_kernel_ttl, now)
        if remaining <= 0:
            delete_kernel = True
            events.append(
                EventSpec(
                    "Normal",
                    "FailedKernelDeleted",
                    f"deleting the failed Kernel after {settings.failed_kernel_ttl:g} s",
                )
            )
        else:
            requeue_after = remaining

    return Desired(
        identity=identity,
        annotations=annotations,
        became_ready_after=_became_ready_after(kernel, ready, now),
        pod=new_pod,
        secret=new_secret,
        service=desired_service,
        status=status(identity, ready, pod),
        delete_kernel=delete_kernel,
        requeue_after=requeue_after,
        events=tuple(events),
        pod_warnings=warnings if pod is not None else (),
        pool=pool_name,
        claim=_names(observed.standby) if pod is None and not _had_pod(kernel) else (),
        activate=activate,
        delete_pods=tuple(
            (str(meta(p).get("name", "")), str(meta(p).get("uid", "")))
            for p in observed.surplus_pods
        ),
        activation_key=key,
        idle_timeout=idle_timeout(kernel, settings),
        ready_source="pool" if pod is not None and pool_of(pod) is not None else "cold",
    )


def _had_pod(kernel: Obj) -> bool:
    """Whether the Kernel's status ever showed a Pod: a Pod that dies is recreated cold, with
    the same identity; only a new Kernel claims a standby Pod."""
    return bool((kernel.get("status") or {}).get("phase"))


def _names(objects: Sequence[Obj]) -> tuple[str, ...]:
    return tuple(str(meta(o).get("name", "")) for o in objects)


def _activation(
    pod: Obj | None, identity: Identity, ready: Readiness
) -> tuple[str | None, Readiness]:
    """A claimed Pod whose standby kernel is not active for this Kernel yet: its name (to
    activate), and the Kernel not Ready meanwhile."""
    if pod is None or pool_of(pod) is None or activated_for(pod) == identity.kernel_id:
        return None, ready
    phase = (pod.get("status") or {}).get("phase")
    if meta(pod).get("deletionTimestamp") or phase in ("Succeeded", "Failed"):
        return None, ready  # nothing to activate any more: it is replaced (cold) once gone
    name = str(meta(pod).get("name", ""))
    if ready.status != "True":
        return name, ready
    return name, Readiness(
        "False",
        "Activating",
        f"the kernel's Pod {name} was claimed from pool {pool_of(pod)} and is being given"
        " this kernel's identity",
    )


def _blocked(
    kernel: Obj,
    identity: Identity,
    annotations: dict[str, str] | None,
    status: dict[str, Any],
    ready: Readiness,
) -> Desired:
    return Desired(
        identity=identity,
        annotations=annotations,
        status=status,
        events=_transition_event(kernel, ready),
    )


def _transition_event(kernel: Obj, ready: Readiness) -> tuple[EventSpec, ...]:
    """A Warning Event when the Kernel newly enters a failure state worth telling a user."""
    if ready.reason not in {
        "KernelFailed",
        "PodNameConflict",
        "ServiceNameConflict",
        "InvalidPortEnv",
    }:
        return ()
    for cond in (kernel.get("status") or {}).get("conditions") or ():
        if cond.get("type") == "Ready" and cond.get("reason") == ready.reason:
            return ()  # already reported
    return (EventSpec("Warning", ready.reason, ready.message),)


def _became_ready_after(kernel: Obj, ready: Readiness, now: datetime) -> float | None:
    """Seconds from the Kernel's creation to now, when it turns Ready (its stored status is
    not); the applier counts only a Kernel's first time (a replaced Pod, or a readiness that
    dropped and came back, is not a startup)."""
    if ready.status != "True":
        return None
    stored = kernel.get("status") or {}
    if stored.get("readyReplicas"):
        return None
    created = meta(kernel).get("creationTimestamp")
    if not created:
        return None
    try:
        when = datetime.fromisoformat(str(created).replace("Z", "+00:00"))
    except ValueError:
        return None
    return max(0.0, (now - when).total_seconds())


def _ttl_remaining(pod: Obj, container_name: str, ttl: float, now: datetime) -> float:
    stamp = failed_at(pod, container_name)
    if stamp is None:
        return 0.0
    try:
        when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return 0.0
    # min(): a finish time ahead of our clock (node clock skew) never delays beyond the TTL,
    # so a TTL of 0 deletes at once.
    return min(ttl, ttl - (now - when).total_seconds())


def build_pod(kernel: Obj, identity: Identity, settings: ReconcileSettings) -> dict[str, Any]:
    """The kernel's Pod, built from the template (never from a cached Pod)."""
    m = meta(kernel)
    name = m.get("name", "")
    template = (kernel.get("spec") or {}).get("template") or {}
    template_meta = template.get("metadata") or {}
    spec: dict[str, Any] = thaw(template.get("spec") or {})
    containers: list[dict[str, Any]] = spec["containers"]
    main = containers[0]
    main["name"] = name
    main["env"] = _kernel_env(main.get("env") or [], kernel, identity, settings)
    if settings.readiness_probe and not main.get("readinessProbe"):
        main["readinessProbe"] = {
            "tcpSocket": {"port": identity.ports.shell},
            "periodSeconds": 2,
            "failureThreshold": 3,
        }
    spec.setdefault("restartPolicy", "Never")

    labels = {**(m.get("labels") or {}), **(template_meta.get("labels") or {}), NAME_LABEL: name}
    inherited = {
        k: v
        for k, v in (m.get("annotations") or {}).items()
        if "kubectl" not in k and "kernel" not in k
    }
    annotations = {**inherited, **(template_meta.get("annotations") or {})}
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": m.get("namespace", ""),
        "labels": labels,
        "ownerReferences": [owner_reference(kernel)],
    }
    if annotations:
        metadata["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


def _kernel_env(
    env: list[dict[str, Any]], kernel: Obj, identity: Identity, settings: ReconcileSettings
) -> list[dict[str, Any]]:
    ours: dict[str, dict[str, Any]] = {ENV_KERNEL_ID: {"value": identity.kernel_id}}
    for attr, env_name in KernelPorts.ENV:
        ours[env_name] = {"value": str(getattr(identity.ports, attr))}
    if settings.key_mode is KeyMode.SECRET:
        ours[ENV_KERNEL_KEY] = {
            "valueFrom": {
                "secretKeyRef": {
                    "name": secret_name(meta(kernel).get("name", "")),
                    "key": SECRET_KEY_FIELD,
                }
            }
        }
    given = {e.get("name") for e in env}
    if ENV_IDLE_TIMEOUT not in given:
        timeout = (kernel.get("spec") or {}).get("idleTimeoutSeconds")
        if timeout is None and settings.default_idle_timeout:
            timeout = settings.default_idle_timeout
        if timeout is not None:
            ours[ENV_IDLE_TIMEOUT] = {"value": str(timeout)}
    result = [
        {"name": e["name"], **ours.pop(e["name"])} if e.get("name") in ours else e for e in env
    ]
    result += [{"name": env_name, **value} for env_name, value in ours.items()]
    return result


def build_service(kernel: Obj, identity: Identity) -> dict[str, Any]:
    """The kernel's ClusterIP Service in front of its five ports."""
    m = meta(kernel)
    name = m.get("name", "")
    ports = [
        {"name": port_name, "port": port, "targetPort": port, "protocol": "TCP"}
        for port_name, port in (
            (port_name, getattr(identity.ports, attr))
            for attr, port_name in KernelPorts.SERVICE_PORT_NAMES
        )
    ]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": m.get("namespace", ""),
            "labels": {NAME_LABEL: name},
            "ownerReferences": [owner_reference(kernel)],
        },
        "spec": {"type": "ClusterIP", "selector": {NAME_LABEL: name}, "ports": ports},
    }


def build_secret(kernel: Obj, identity: Identity) -> dict[str, Any]:
    """The Secret holding the kernel's HMAC key (secret mode)."""
    m = meta(kernel)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": secret_name(m.get("name", "")),
            "namespace": m.get("namespace", ""),
            "labels": {NAME_LABEL: m.get("name", "")},
            "ownerReferences": [owner_reference(kernel)],
        },
        "stringData": {SECRET_KEY_FIELD: identity.key},
    }


def service_drift(desired: Mapping[str, Any], cached: Obj) -> dict[str, Any] | None:
    """A merge patch of the Service fields we own (type, selector, ports), or None."""
    want = desired["spec"]
    have = cached.get("spec") or {}
    patch: dict[str, Any] = {}
    if have.get("type") != want["type"]:
        patch["type"] = want["type"]
    selector = dict(have.get("selector") or {})
    if selector != want["selector"]:
        patch["selector"] = {
            **{k: None for k in selector if k not in want["selector"]},
            **want["selector"],
        }
    if _ports(have.get("ports") or ()) != _ports(want["ports"]):
        patch["ports"] = want["ports"]
    return {"spec": patch} if patch else None


def _ports(ports: Sequence[Obj]) -> list[tuple[Any, ...]]:
    return sorted(
        (p.get("name"), p.get("port"), p.get("targetPort", p.get("port")), p.get("protocol", "TCP"))
        for p in ports
    )
