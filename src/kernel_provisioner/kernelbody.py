"""The Kernel resource the provisioner creates for one Jupyter kernel. Pure.

- Name: ``<user>-<kernel id>``, as Enterprise Gateway names its kernel Pods: a DNS-1035 label
  of at most 63 characters (it names the kernel's Service). The user part is lowercased, made
  of ``a-z0-9-`` only and cut to what fits; a user part that is empty or does not start with a
  letter becomes ``kernel``/``k<user>``. A kernel id that is not a UUID is reduced the same way.
- Labels: ``jupyter.org/launched-by: kernel-controller-provisioner`` (the provisioner's shared
  watch selects on it; the controller copies the Kernel's labels onto its Pod, so the Pods
  carry it too) and ``jupyter.org/kernel-username``.
- ``spec.template``: the configured Pod template (a deep copy), with ``containers[0]`` given
  the image when one is configured, the working directory, and the environment: the
  template's own entries, then ``KERNEL_ID`` = Jupyter's kernel id and the ``KERNEL_*``
  variables passed on (these win over the template's entries of the same name).
  ``spec.idleTimeoutSeconds`` when one is configured.
- With a warm pool configured: ``spec.poolRef.name``, and the template only when an image or
  a template is configured too (then a cold start uses it; without one, the pool's). A
  kernel claimed from the pool runs in the pool's Pod, so the per-launch environment and
  working directory do not reach it; its kernel id does, through the annotation
  ``jupyter.org/kernel-id`` (the controller takes it as the Kernel's id).
"""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Mapping
from typing import Any

from kernel_provisioner.config import LaunchConfig
from reconcilers.model import API_VERSION, ENV_KERNEL_ID, KERNEL_ID_ANNOTATION, KIND

MAX_NAME = 63
LAUNCHED_BY_LABEL = "jupyter.org/launched-by"
LAUNCHED_BY = "kernel-controller-provisioner"
USERNAME_LABEL = "jupyter.org/kernel-username"
SELECTOR = f"{LAUNCHED_BY_LABEL}={LAUNCHED_BY}"
DEFAULT_CONTAINER = "kernel"

_INVALID = re.compile(r"[^a-z0-9-]+")
_DASHES = re.compile(r"-{2,}")
_LABEL_VALUE = re.compile(r"[^A-Za-z0-9._-]+")


def dns_part(text: str) -> str:
    """``text`` as lowercase ``a-z0-9-`` with no leading, trailing or doubled dashes."""
    return _DASHES.sub("-", _INVALID.sub("-", text.lower())).strip("-")


def kernel_name(username: str, kernel_id: str) -> str:
    """The Kernel's name for ``kernel_id`` launched by ``username`` (see the module doc)."""
    kid = dns_part(kernel_id)
    if not kid or len(kid) > 40:
        kid = hashlib.sha256(kernel_id.encode()).hexdigest()[:32]
    user = dns_part(username)
    if not user:
        user = "kernel"
    elif not user[0].isalpha():
        user = f"k{user}"
    room = MAX_NAME - len(kid) - 1
    user = user[:room].rstrip("-")
    return f"{user}-{kid}"


def label_value(text: str) -> str:
    """``text`` as a valid label value (at most 63 characters, alphanumerics at both ends)."""
    value = _LABEL_VALUE.sub("-", text)[:MAX_NAME]
    return value.strip("-._")


def kernel_body(*, name: str, kernel_id: str, config: LaunchConfig) -> dict[str, Any]:
    """The Kernel to create (see the module docstring)."""
    body: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": name,
            "labels": {
                LAUNCHED_BY_LABEL: LAUNCHED_BY,
                USERNAME_LABEL: label_value(config.username) or "unknown",
            },
        },
        "spec": {},
    }
    if config.pool is not None:
        body["metadata"]["annotations"] = {KERNEL_ID_ANNOTATION: kernel_id}
        body["spec"]["poolRef"] = {"name": config.pool}
    if config.pool is None or config.image or config.template:
        body["spec"]["template"] = _template(kernel_id, config)
    if config.idle_timeout is not None:
        body["spec"]["idleTimeoutSeconds"] = config.idle_timeout
    return body


def _template(kernel_id: str, config: LaunchConfig) -> dict[str, Any]:
    template: dict[str, Any] = copy.deepcopy(dict(config.template or {}))
    spec = template.setdefault("spec", {})
    containers = spec.setdefault("containers", [])
    if not containers:
        containers.append({"name": DEFAULT_CONTAINER})
    main = containers[0]
    main.setdefault("name", DEFAULT_CONTAINER)
    if config.image:
        main["image"] = config.image
    if config.working_dir:
        main["workingDir"] = config.working_dir
    main["env"] = _env(main.get("env") or [], {ENV_KERNEL_ID: kernel_id, **config.env})
    return template


def _env(current: list[Any], ours: Mapping[str, str]) -> list[dict[str, Any]]:
    kept = [dict(e) for e in current if isinstance(e, Mapping) and e.get("name") not in ours]
    return kept + [{"name": k, "value": v} for k, v in sorted(ours.items())]
