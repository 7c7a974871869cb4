"""What the local node reads from a Pod: its one container's environment, readiness probe and
grace period. Pure functions; Secrets are read through a callable the caller passes.

Environment of the kernel process (in this order, later entries win):

1. a minimal base taken from the node's own environment (``PATH``, ``HOME``, ``LANG``, …) and
   ``HOSTNAME`` = the Pod's name — never the node's other variables (no ``KUBECONFIG``);
2. ``containers[0].env``: literal ``value``s; ``valueFrom.secretKeyRef`` resolved by reading
   the Secret (a missing Secret or key is an :class:`EnvError` unless ``optional``);
   ``valueFrom.fieldRef`` for ``metadata.name|namespace|uid``, ``metadata.labels['k']``,
   ``metadata.annotations['k']``, ``spec.nodeName``, ``spec.serviceAccountName``,
   ``status.podIP`` and ``status.hostIP``; other sources (configMapKeyRef, resourceFieldRef)
   and ``envFrom`` are ignored, and ``$(VAR)`` references are not expanded;
3. ``KERNEL_IP`` = the Pod's address and ``KERNEL_PYTHON`` = the node's interpreter.

Only ``containers[0]`` is run; its ``image``, ``command`` and ``args`` are ignored (the node
always runs the kernel launch script).
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

KERNEL_NAME_LABEL = "jupyter.org/kernel-name"
KERNEL_POOL_LABEL = "jupyter.org/kernel-pool"
DEFAULT_GRACE_SECONDS = 30.0
BASE_ENV_NAMES = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "USER", "LOGNAME")

SecretReader = Callable[[str, str], Mapping[str, str]]
"""``(namespace, name) -> decoded data``; raises ``KeyError`` when the Secret does not exist."""

Pod = Mapping[str, Any]

_SUBSCRIPT = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")


class EnvError(Exception):
    """The container's environment cannot be built (kubelet: ``CreateContainerConfigError``)."""


@dataclass(frozen=True)
class Probe:
    """A readiness probe reduced to what the node checks: a TCP connect to ``port``."""

    port: int | None  # None: an exec probe, which the node treats as passing
    initial_delay: float
    period: float


def meta(pod: Pod) -> Mapping[str, Any]:
    return pod.get("metadata") or {}


def uid(pod: Pod) -> str:
    return str(meta(pod).get("uid") or "")


def main_container(pod: Pod) -> Mapping[str, Any]:
    containers = (pod.get("spec") or {}).get("containers") or [{}]
    first: Mapping[str, Any] = containers[0]
    return first


def phase(pod: Pod) -> str:
    return str((pod.get("status") or {}).get("phase") or "Pending")


def is_terminal(pod: Pod) -> bool:
    return phase(pod) in ("Succeeded", "Failed")


def deletion_requested(pod: Pod) -> bool:
    return bool(meta(pod).get("deletionTimestamp"))


def container_started(pod: Pod) -> bool:
    """Whether the Pod's status says its container was started (by some earlier node run)."""
    for status in (pod.get("status") or {}).get("containerStatuses") or ():
        state = status.get("state") or {}
        if state.get("running") or state.get("terminated"):
            return True
    return False


def grace_seconds(pod: Pod, cap: float) -> float:
    """How long a stopping process gets between SIGTERM and SIGKILL (at most ``cap``)."""
    metadata = meta(pod)
    value = metadata.get("deletionGracePeriodSeconds")
    if value is None:
        value = (pod.get("spec") or {}).get("terminationGracePeriodSeconds")
    seconds = DEFAULT_GRACE_SECONDS if value is None else float(value)
    return max(0.0, min(seconds, cap))


def readiness_probe(pod: Pod) -> Probe | None:
    """The container's readiness probe, or None when it has none (Ready once started).

    ``tcpSocket``, ``httpGet`` and ``grpc`` probes are checked as a TCP connect to their port
    (a named port is looked up in the container's ports); an ``exec`` probe passes.
    """
    container = main_container(pod)
    probe = container.get("readinessProbe")
    if not probe:
        return None
    port: int | None = None
    for kind in ("tcpSocket", "httpGet", "grpc"):
        if probe.get(kind):
            port = _resolve_port(container, probe[kind].get("port"))
            break
    return Probe(
        port=port,
        initial_delay=float(probe.get("initialDelaySeconds") or 0),
        period=float(probe.get("periodSeconds") or 10),
    )


def _resolve_port(container: Mapping[str, Any], port: object) -> int | None:
    if isinstance(port, int):
        return port
    if isinstance(port, str):
        if port.isdigit():
            return int(port)
        for declared in container.get("ports") or ():
            if declared.get("name") == port and declared.get("containerPort"):
                return int(declared["containerPort"])
    return None


def base_environment(pod: Pod) -> dict[str, str]:
    env = {name: os.environ[name] for name in BASE_ENV_NAMES if name in os.environ}
    env["HOSTNAME"] = str(meta(pod).get("name") or "")
    return env


def container_env(
    pod: Pod, *, read_secret: SecretReader, pod_ip: str, host_ip: str
) -> dict[str, str]:
    """``containers[0].env`` resolved as described in the module docstring (step 2)."""
    namespace = str(meta(pod).get("namespace") or "")
    env: dict[str, str] = {}
    for var in main_container(pod).get("env") or ():
        name = var.get("name")
        if not name:
            continue
        if "value" in var or not var.get("valueFrom"):
            env[name] = str(var.get("value") or "")
            continue
        source = var["valueFrom"]
        if source.get("secretKeyRef"):
            value = _secret_value(source["secretKeyRef"], namespace, read_secret)
        elif source.get("fieldRef"):
            path = str(source["fieldRef"].get("fieldPath") or "")
            value = _field_value(pod, path, pod_ip, host_ip)
        else:
            continue
        if value is not None:
            env[name] = value
    return env


def _secret_value(ref: Mapping[str, Any], namespace: str, read_secret: SecretReader) -> str | None:
    secret, key, optional = ref.get("name") or "", ref.get("key") or "", bool(ref.get("optional"))
    try:
        data = read_secret(namespace, secret)
    except KeyError:
        if optional:
            return None
        raise EnvError(f'secret "{secret}" not found') from None
    if key not in data:
        if optional:
            return None
        raise EnvError(f"couldn't find key {key} in Secret {namespace}/{secret}")
    return data[key]


def _field_value(pod: Pod, path: str, pod_ip: str, host_ip: str) -> str | None:
    metadata, spec = meta(pod), pod.get("spec") or {}
    simple = {
        "metadata.name": metadata.get("name"),
        "metadata.namespace": metadata.get("namespace"),
        "metadata.uid": metadata.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.podIP": pod_ip,
        "status.hostIP": host_ip,
    }
    if path in simple:
        value = simple[path]
        return None if value is None else str(value)
    match = _SUBSCRIPT.match(path)
    if match:
        value = (metadata.get(match.group(1)) or {}).get(match.group(2))
        return None if value is None else str(value)
    return None


def decode_secret(secret: Mapping[str, Any]) -> dict[str, str]:
    """A Secret's ``data`` decoded from base64 (invalid UTF-8 replaced)."""
    return {
        key: base64.b64decode(value).decode(errors="replace")
        for key, value in (secret.get("data") or {}).items()
    }


def running_since(pod: Pod) -> str:
    """``startedAt`` of the running container in the Pod's status, or ""."""
    for status in (pod.get("status") or {}).get("containerStatuses") or ():
        running = (status.get("state") or {}).get("running") or {}
        if running.get("startedAt"):
            return str(running["startedAt"])
    return ""


def ready_since(pod: Pod) -> str | None:
    """When the Pod's status says it became Ready, or None when it is not Ready."""
    for condition in (pod.get("status") or {}).get("conditions") or ():
        if condition.get("type") == "Ready" and condition.get("status") == "True":
            since = condition.get("lastTransitionTime")
            return str(since) if since else None
    return None


def termination_message_policy(pod: Pod) -> str:
    return str(main_container(pod).get("terminationMessagePolicy") or "File")
