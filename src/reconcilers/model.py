"""The Kernel API as this controller sees it: names, annotation keys, settings, identities.

Pure data: no I/O. The annotation keys and the connection-info JSON shape are a compatibility
contract with existing clients (``jkclient``): never change them.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypedDict

GROUP = "jupyter.org"
VERSION = "v1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "Kernel"
PLURAL = "kernels"

POOL_KIND = "KernelPool"
POOL_PLURAL = "kernelpools"
POOL_VERSION = "v1alpha1"
POOL_API_VERSION = f"{GROUP}/{POOL_VERSION}"

FIELD_MANAGER = "kernel-controller"
NAME_LABEL = "jupyter.org/kernel-name"
POOL_LABEL = "jupyter.org/kernel-pool"  # on every Pod a pool started, claimed or not
# On a claimed Pod once its standby kernel is activated: the kernel id it now serves.
ACTIVATED_ANNOTATION = "jupyter.org/activated-for"
KERNEL_ID_ANNOTATION = "jupyter.org/kernel-id"
CONNECTION_INFO_ANNOTATION = "jupyter.org/kernel-connection-info"
SECRET_SUFFIX = "-connection"  # noqa: S105 - a name, not a secret
SECRET_KEY_FIELD = "key"  # noqa: S105 - a name, not a secret

ENV_KERNEL_ID = "KERNEL_ID"
ENV_KERNEL_KEY = "KERNEL_KEY"
ENV_IDLE_TIMEOUT = "KERNEL_IDLE_TIMEOUT"
ENV_ACTIVATION_PORT = "KERNEL_ACTIVATION_PORT"
ENV_ACTIVATION_TOKEN = "KERNEL_ACTIVATION_TOKEN"  # noqa: S105 - a variable's name
ACTIVATION_TOKEN_FIELD = "token"  # noqa: S105 - a Secret's key, not a secret
DEFAULT_ACTIVATION_PORT = 52400

Obj = Mapping[str, Any]


class KeyMode(enum.Enum):
    """Where the kernel's HMAC key lives."""

    KERNEL_ID = "kernel-id"  # the key is the kernel id, published in the annotation
    SECRET = "secret"  # noqa: S105 - a random key in the Secret <kernel>-connection, never published


@dataclass(frozen=True)
class KernelPorts:
    """The five ZeroMQ ports of a kernel."""

    shell: int
    iopub: int
    stdin: int
    hb: int
    control: int

    ENV = (
        ("shell", "KERNEL_SHELL_PORT"),
        ("iopub", "KERNEL_IOPUB_PORT"),
        ("stdin", "KERNEL_STDIN_PORT"),
        ("hb", "KERNEL_HB_PORT"),
        ("control", "KERNEL_CONTROL_PORT"),
    )
    SERVICE_PORT_NAMES = (
        ("shell", "shell-port"),
        ("iopub", "iopub-port"),
        ("stdin", "stdin-port"),
        ("hb", "hb-port"),
        ("control", "control-port"),
    )


DEFAULT_PORTS = KernelPorts(shell=52317, iopub=52318, stdin=52319, hb=52320, control=52321)  # noqa: S604


@dataclass(frozen=True)
class ReconcileSettings:
    """Controller-wide choices that shape every Kernel's children."""

    default_ports: KernelPorts = DEFAULT_PORTS
    cluster_domain: str = "cluster.local"
    key_mode: KeyMode = KeyMode.KERNEL_ID
    readiness_probe: bool = True
    default_idle_timeout: int = 0
    failed_kernel_ttl: float = 3600.0
    reissue_pod_events: bool = True
    activation_port: int = DEFAULT_ACTIVATION_PORT


@dataclass(frozen=True)
class Fresh:
    """Randomness handed to the pure reconciler, used only when nothing was decided yet."""

    kernel_id: str
    key: str = field(repr=False)


@dataclass(frozen=True)
class Identity:
    """The kernel's id, ports and HMAC key, decided once and persisted in annotations.

    ``key`` is "" in secret mode once the Secret exists (the controller never reads it back).
    """

    kernel_id: str
    ports: KernelPorts
    key: str = field(repr=False)


class ConnectionInfo(TypedDict, total=False):
    """The ``jupyter.org/kernel-connection-info`` JSON, keys in this exact order."""

    shell_port: int
    stdin_port: int
    iopub_port: int
    control_port: int
    hb_port: int
    ip: str
    key: str
    transport: str
    signature_scheme: str
    kernel_name: str


def connection_info_json(*, identity: Identity, host: str, include_key: bool) -> str:
    """The annotation value: compact JSON with the keys of :class:`ConnectionInfo` in order."""
    ports = identity.ports
    info: dict[str, Any] = {
        "shell_port": ports.shell,
        "stdin_port": ports.stdin,
        "iopub_port": ports.iopub,
        "control_port": ports.control,
        "hb_port": ports.hb,
        "ip": host,
    }
    if include_key:
        info["key"] = identity.key
    info.update({"transport": "tcp", "signature_scheme": "hmac-sha256", "kernel_name": ""})
    return json.dumps(info, separators=(",", ":"))


def service_host(*, name: str, namespace: str, cluster_domain: str) -> str:
    return f"{name}.{namespace}.svc.{cluster_domain}"


def secret_name(kernel_name: str) -> str:
    return f"{kernel_name}{SECRET_SUFFIX}"


def activation_secret_name(pod_name: str) -> str:
    return f"{pod_name}-activation"


def pool_ref(kernel: Obj) -> str | None:
    """The KernelPool a Kernel names in ``spec.poolRef``, if any."""
    ref = (kernel.get("spec") or {}).get("poolRef") or {}
    name = ref.get("name") if isinstance(ref, Mapping) else None
    return str(name) if name else None


def pool_of(pod: Obj) -> str | None:
    """The pool that started a Pod (its ``jupyter.org/kernel-pool`` label), if any."""
    name = (meta(pod).get("labels") or {}).get(POOL_LABEL)
    return str(name) if name else None


def meta(obj: Obj) -> Obj:
    value = obj.get("metadata")
    return value if isinstance(value, Mapping) else {}


def controller_reference(owner: Obj, *, api_version: str, kind: str) -> dict[str, Any]:
    """A controller ownerReference to ``owner`` (of ``api_version`` and ``kind``)."""
    m = meta(owner)
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": m.get("name", ""),
        "uid": m.get("uid", ""),
        "controller": True,
        "blockOwnerDeletion": True,
    }


def owner_reference(kernel: Obj) -> dict[str, Any]:
    """The controller ownerReference every child of ``kernel`` carries."""
    return controller_reference(kernel, api_version=API_VERSION, kind=KIND)


def controlled_by(child: Obj, owner: Obj, *, kind: str = KIND) -> bool:
    """True when ``child``'s controller ownerReference names ``owner`` (a ``kind``, by uid)."""
    uid = meta(owner).get("uid")
    return any(
        ref.get("controller") and ref.get("kind") == kind and ref.get("uid") == uid
        for ref in meta(child).get("ownerReferences") or ()
    )
