"""The connection info Jupyter gets for a Kernel. Pure.

It is the controller's annotation ``jupyter.org/kernel-connection-info`` (the five ports,
transport, signature scheme and, in the controller's ``kernel-id`` key mode, the key), with:

- ``ip``: the Kernel's Service by its cluster DNS name (``connect_via: service``, as the
  annotation has it), or the IP of the Pod the caller found Ready (``pod-ip``; taken from the
  Pod, not from the Kernel's status, which may still describe the Pod a restart replaced);
- ``key``: in ``secret`` key mode the annotation has none; the key is the one of the Secret
  named in ``status.connection.keySecret``, passed in by the caller;
- ``kernel_name``: the kernelspec's name.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from kernel_provisioner.config import ConnectVia
from reconcilers.model import CONNECTION_INFO_ANNOTATION, meta

PORT_KEYS = ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")


class NotPublished(Exception):
    """The Kernel does not (yet) publish what a client needs; the message says what."""


def published_info(kernel: Mapping[str, Any]) -> dict[str, Any]:
    """The annotation as a dict; raises :class:`NotPublished` when missing or unreadable."""
    raw = (meta(kernel).get("annotations") or {}).get(CONNECTION_INFO_ANNOTATION)
    if not raw:
        raise NotPublished(f"no {CONNECTION_INFO_ANNOTATION} annotation yet")
    try:
        info = json.loads(raw)
    except ValueError:
        raise NotPublished(f"{CONNECTION_INFO_ANNOTATION} is not JSON") from None
    if not isinstance(info, dict) or not all(isinstance(info.get(k), int) for k in PORT_KEYS):
        raise NotPublished(f"{CONNECTION_INFO_ANNOTATION} lacks the five ports")
    return info


def key_secret(kernel: Mapping[str, Any]) -> str | None:
    """The Secret holding the key (``secret`` key mode), from the Kernel's status."""
    connection = (kernel.get("status") or {}).get("connection") or {}
    name = connection.get("keySecret")
    return str(name) if name else None


def connection_info(
    kernel: Mapping[str, Any],
    *,
    connect_via: ConnectVia,
    kernel_name: str,
    pod_ip: str | None,
    secret_key: str | None = None,
) -> dict[str, Any]:
    """What ``jupyter_client`` connects with (see the module docstring)."""
    info = published_info(kernel)
    if connect_via is ConnectVia.POD_IP:
        if not pod_ip:
            raise NotPublished("the kernel's Pod has no IP yet")
        info["ip"] = pod_ip
    if secret_key is not None:
        info["key"] = secret_key
    elif not info.get("key"):
        raise NotPublished("no key: the annotation has none and no Secret was read")
    info["kernel_name"] = kernel_name
    info.setdefault("transport", "tcp")
    info.setdefault("signature_scheme", "hmac-sha256")
    return info
