"""Kernelspecs that launch kernels through the provisioner, and their installation.

:func:`kernelspec` builds ``kernel.json`` (pure): no ``argv`` (nothing runs locally),
``interrupt_mode: message`` (interrupts go over the control channel: a signal cannot reach a
Pod), and ``metadata.kernel_provisioner`` naming ``kernel-controller-provisioner`` with the
settings given. :func:`install` writes it where Jupyter looks for kernelspecs, with
``jupyter_client``'s own ``KernelSpecManager`` (``--user``, ``--sys-prefix``, ``--prefix``:
the conventions of ``jupyter kernelspec install``), and returns the directory.
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kernel_provisioner.config import ConfigError, resolve

PROVISIONER_NAME = "kernel-controller-provisioner"
DEFAULT_NAME = "python3-k8s"
DEFAULT_DISPLAY_NAME = "Python 3 (Kubernetes)"


def kernelspec(*, display_name: str, language: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """The ``kernel.json`` of a kernelspec whose kernels run as Kernel resources.

    ``config`` is checked as the provisioner will read it (an unknown key or a bad value
    raises :class:`~kernel_provisioner.config.ConfigError` now, not at the first launch).
    """
    settings = {k: v for k, v in config.items() if v is not None}
    resolve(settings, {}, default_username="check")
    return {
        "argv": [],
        "display_name": display_name,
        "language": language,
        "interrupt_mode": "message",
        "metadata": {
            "kernel_provisioner": {"provisioner_name": PROVISIONER_NAME, "config": settings}
        },
    }


def install(
    spec: Mapping[str, Any],
    *,
    name: str,
    user: bool = False,
    prefix: str | None = None,
) -> Path:
    """Install ``spec`` as kernelspec ``name``; returns where it was written."""
    from jupyter_client.kernelspec import KernelSpecManager  # noqa: PLC0415 - jupyter only

    if not name or not all(c.isalnum() or c in "-._" for c in name):
        raise ConfigError(f"kernelspec name {name!r} must be letters, digits, '-', '.', '_'")
    with tempfile.TemporaryDirectory() as source:
        (Path(source) / "kernel.json").write_text(json.dumps(spec, indent=2) + "\n")
        where = KernelSpecManager().install_kernel_spec(
            source, kernel_name=name, user=user, prefix=prefix
        )
    return Path(where)


def sys_prefix() -> str:
    """``--sys-prefix``: the current environment (a venv or conda env)."""
    return sys.prefix
