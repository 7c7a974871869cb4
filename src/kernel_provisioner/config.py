"""The provisioner's settings for one kernel launch, resolved from the kernelspec and the
launch environment. Pure: no I/O but reading the service-account namespace file.

Sources, first match wins (SPEC §12):

| setting | kernelspec ``metadata.kernel_provisioner.config`` | launch environment | default |
| --- | --- | --- | --- |
| namespace | ``namespace`` | ``KERNEL_NAMESPACE`` | the in-cluster namespace, else ``default`` |
| warm pool | ``pool`` | ``KERNEL_POOL`` | none: every kernel starts cold |
| image | ``image`` | ``KERNEL_IMAGE`` | none: then ``template`` (or ``pool``) must name one |
| Pod template | ``template`` | | |
| host in the connection info | ``connect_via``: ``service`` or ``pod-ip`` | | ``service`` |
| launch timeout (s) | ``launch_timeout`` | ``KERNEL_LAUNCH_TIMEOUT`` | 300 |
| idle timeout (s) | ``idle_timeout`` | ``KERNEL_IDLE_TIMEOUT`` | the controller's default |
| cluster | ``kubeconfig`` | ``KUBECONFIG`` | in-cluster, else ``~/.kube/config`` |

``KERNEL_USERNAME`` (else the server's user) names the Kernel and is passed on;
``KERNEL_WORKING_DIR`` becomes the container's working directory and is passed on; every other
``KERNEL_*`` variable of the launch environment reaches the kernel's container, except those
the controller and the provisioner decide (the id, the key, the five ports, ``KERNEL_IP``) and
those read here. A bad value raises :class:`ConfigError` naming the key or variable.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconcilers.model import ENV_IDLE_TIMEOUT, ENV_KERNEL_ID, ENV_KERNEL_KEY, KernelPorts

NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
FALLBACK_NAMESPACE = "default"
DEFAULT_LAUNCH_TIMEOUT_SECONDS = 300.0

ENV_NAMESPACE = "KERNEL_NAMESPACE"
ENV_IMAGE = "KERNEL_IMAGE"
ENV_POOL = "KERNEL_POOL"
ENV_LAUNCH_TIMEOUT = "KERNEL_LAUNCH_TIMEOUT"
ENV_USERNAME = "KERNEL_USERNAME"
ENV_WORKING_DIR = "KERNEL_WORKING_DIR"
ENV_KUBECONFIG = "KUBECONFIG"

# Decided by the controller (ports, key) or the provisioner (id), or read by the provisioner
# itself: never copied from the launch environment into the container.
NOT_PASSED_ON = frozenset(
    {
        ENV_KERNEL_ID,
        ENV_KERNEL_KEY,
        "KERNEL_IP",
        ENV_NAMESPACE,
        ENV_IMAGE,
        ENV_POOL,
        ENV_LAUNCH_TIMEOUT,
        ENV_IDLE_TIMEOUT,
        *(env for _, env in KernelPorts.ENV),
    }
)


class ConfigError(ValueError):
    """A setting has a value the provisioner cannot use; the message names it."""


class ConnectVia(enum.Enum):
    """Which host clients get in the connection info."""

    SERVICE = "service"  # the Kernel's Service (cluster DNS): for servers on the pod network
    POD_IP = "pod-ip"  # the Pod's IP: for servers off the pod network, and the local node


@dataclass(frozen=True, kw_only=True)
class LaunchConfig:
    """Everything one launch needs; see the module docstring for where each value comes from."""

    namespace: str
    image: str | None
    template: Mapping[str, Any] | None
    pool: str | None = None
    connect_via: ConnectVia
    launch_timeout: float
    idle_timeout: int | None
    kubeconfig: str | None
    username: str
    working_dir: str | None
    env: Mapping[str, str] = field(default_factory=dict)  # KERNEL_* passed to the container


def resolve(
    config: Mapping[str, Any],
    env: Mapping[str, str],
    *,
    default_username: str,
    namespace_file: Path = NAMESPACE_FILE,
) -> LaunchConfig:
    """The launch settings from the kernelspec's provisioner ``config`` and the launch ``env``."""
    unknown = set(config) - KNOWN_KEYS
    if unknown:
        raise ConfigError(
            f"unknown kernel_provisioner config key(s) {', '.join(sorted(unknown))}; "
            f"known: {', '.join(sorted(KNOWN_KEYS))}"
        )
    template = _template(config.get("template"))
    image = _text(config, "image") or env.get(ENV_IMAGE, "").strip() or None
    pool = _text(config, "pool") or env.get(ENV_POOL, "").strip() or None
    if pool is not None and not _dns_label(pool):
        raise ConfigError(f"pool: {pool!r} is not the name of a KernelPool (a DNS-1123 name)")
    if image is None and not _template_image(template) and pool is None:
        raise ConfigError(
            "no kernel image: set 'image' (or 'template' with an image, or 'pool') in the "
            f"kernelspec's kernel_provisioner config, or {ENV_IMAGE} in the environment"
        )
    username = env.get(ENV_USERNAME, "").strip() or default_username
    working_dir = env.get(ENV_WORKING_DIR, "").strip() or None
    passed = {
        name: value
        for name, value in env.items()
        if name.startswith("KERNEL_") and name not in NOT_PASSED_ON
    }
    passed[ENV_USERNAME] = username
    return LaunchConfig(
        namespace=_text(config, "namespace")
        or env.get(ENV_NAMESPACE, "").strip()
        or in_cluster_namespace(namespace_file),
        image=image,
        template=template,
        pool=pool,
        connect_via=_connect_via(config.get("connect_via")),
        launch_timeout=_seconds(
            config.get("launch_timeout"),
            env.get(ENV_LAUNCH_TIMEOUT),
            name=f"launch_timeout ({ENV_LAUNCH_TIMEOUT})",
            default=DEFAULT_LAUNCH_TIMEOUT_SECONDS,
            positive=True,
        ),
        idle_timeout=_idle_timeout(config.get("idle_timeout"), env.get(ENV_IDLE_TIMEOUT)),
        kubeconfig=_text(config, "kubeconfig") or env.get(ENV_KUBECONFIG, "").strip() or None,
        username=username,
        working_dir=working_dir,
        env=passed,
    )


KNOWN_KEYS = frozenset(
    {
        "namespace",
        "image",
        "pool",
        "template",
        "connect_via",
        "launch_timeout",
        "idle_timeout",
        "kubeconfig",
    }
)


def in_cluster_namespace(path: Path = NAMESPACE_FILE) -> str:
    """The namespace of the Pod this runs in, else ``default``."""
    try:
        return path.read_text(encoding="utf-8").strip() or FALLBACK_NAMESPACE
    except OSError:
        return FALLBACK_NAMESPACE


_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


def _dns_label(name: str) -> bool:
    return bool(_DNS_SUBDOMAIN.match(name))


def _text(config: Mapping[str, Any], key: str) -> str | None:
    value = config.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(f"kernel_provisioner config {key!r} must be a string, not {value!r}")
    return value.strip() or None


def _template(value: object) -> Mapping[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping) or not set(value) <= {"metadata", "spec"}:
        raise ConfigError(
            "kernel_provisioner config 'template' must be a Pod template: an object with "
            "'metadata' and/or 'spec'"
        )
    spec = value.get("spec") or {}
    containers = spec.get("containers") if isinstance(spec, Mapping) else None
    if containers is not None and (
        not isinstance(containers, list) or not all(isinstance(c, Mapping) for c in containers)
    ):
        raise ConfigError("kernel_provisioner config 'template.spec.containers' must be a list")
    return value


def _template_image(template: Mapping[str, Any] | None) -> str | None:
    containers = ((template or {}).get("spec") or {}).get("containers") or []
    image = containers[0].get("image") if containers else None
    return image if isinstance(image, str) and image.strip() else None


def _connect_via(value: object) -> ConnectVia:
    if value is None:
        return ConnectVia.SERVICE
    for choice in ConnectVia:
        if value == choice.value:
            return choice
    names = ", ".join(c.value for c in ConnectVia)
    raise ConfigError(
        f"kernel_provisioner config 'connect_via' must be one of {names}, not {value!r}"
    )


def _number(value: object, *, name: str) -> float:
    if isinstance(value, bool):
        raise ConfigError(f"{name} must be a number of seconds, not {value!r}")
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number of seconds, not {value!r}") from None
    if not math.isfinite(number) or number < 0:
        raise ConfigError(f"{name} must be a finite number >= 0, not {value!r}")
    return number


def _seconds(
    configured: object, environ: str | None, *, name: str, default: float, positive: bool
) -> float:
    raw: object = configured
    if raw is None and environ is not None and environ.strip():
        raw = environ.strip()
    if raw is None:
        return default
    number = _number(raw, name=name)
    if positive and number == 0:
        raise ConfigError(f"{name} must be greater than 0")
    return number


def _idle_timeout(configured: object, environ: str | None) -> int | None:
    raw: object = configured
    if raw is None and environ is not None and environ.strip():
        raw = environ.strip()
    if raw is None:
        return None
    number = _number(raw, name=f"idle_timeout ({ENV_IDLE_TIMEOUT})")
    if number != int(number):
        raise ConfigError(f"idle_timeout ({ENV_IDLE_TIMEOUT}) must be whole seconds, not {raw!r}")
    return int(number)
