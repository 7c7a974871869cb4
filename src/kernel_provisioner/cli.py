"""``jupyter kernel-controller`` (console script ``jupyter-kernel-controller``).

``jupyter kernel-controller install-kernelspec`` writes a kernelspec whose kernels run as
Kernel resources (see :mod:`kernel_provisioner.kernelspec`) and prints where. Exit codes: 0
done, 2 bad options (one line on stderr, as argparse does), 1 the install failed.
Nothing runs at import time.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kernel_provisioner.config import ConfigError, ConnectVia
from kernel_provisioner.kernelspec import (
    DEFAULT_DISPLAY_NAME,
    DEFAULT_NAME,
    install,
    kernelspec,
    sys_prefix,
)

PROG = "jupyter kernel-controller"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Jupyter integration of the Jupyter Kernel Controller: kernels launched "
        "by Jupyter Server, JupyterLab, nbclient or papermill run as Kernel resources.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    spec = commands.add_parser(
        "install-kernelspec",
        help="install a kernelspec whose kernels run as Kernel resources",
        description="Install a kernelspec that launches its kernels as Kernel resources "
        "(provisioner kernel-controller-provisioner), and print where it was written.",
    )
    spec.add_argument("--name", default=DEFAULT_NAME, help=f"kernelspec name ({DEFAULT_NAME})")
    spec.add_argument(
        "--display-name", default=DEFAULT_DISPLAY_NAME, help=f"({DEFAULT_DISPLAY_NAME})"
    )
    spec.add_argument("--language", default="python", help="kernel language (python)")
    spec.add_argument("--image", help="the kernel container's image (else KERNEL_IMAGE at launch)")
    spec.add_argument(
        "--pool",
        help="a KernelPool of the namespace to claim warm kernels from (else KERNEL_POOL)",
    )
    spec.add_argument(
        "--namespace", help="namespace of the Kernels (else KERNEL_NAMESPACE, the Pod's, default)"
    )
    spec.add_argument(
        "--connect-via",
        choices=[c.value for c in ConnectVia],
        help="host in the connection info: the Service's DNS name (service, the default) or "
        "the Pod's IP (pod-ip: for servers off the pod network)",
    )
    spec.add_argument("--idle-timeout", type=int, help="seconds of idleness before a kernel exits")
    spec.add_argument(
        "--launch-timeout", type=float, help="seconds to wait for a kernel to be Ready (300)"
    )
    spec.add_argument("--kubeconfig", help="kubeconfig of the cluster (else KUBECONFIG, ...)")
    spec.add_argument(
        "--template", type=Path, help="a JSON file with a Pod template (metadata, spec)"
    )
    where = spec.add_mutually_exclusive_group()
    where.add_argument("--user", action="store_true", help="install for the current user")
    where.add_argument(
        "--sys-prefix", action="store_true", help="install into this environment (sys.prefix)"
    )
    where.add_argument("--prefix", help="install under this prefix")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    config: dict[str, Any] = {
        "image": args.image,
        "pool": args.pool,
        "namespace": args.namespace,
        "connect_via": args.connect_via,
        "idle_timeout": args.idle_timeout,
        "launch_timeout": args.launch_timeout,
        "kubeconfig": args.kubeconfig,
    }
    try:
        if args.template is not None:
            config["template"] = json.loads(args.template.read_text(encoding="utf-8"))
        spec = kernelspec(display_name=args.display_name, language=args.language, config=config)
    except (OSError, ValueError) as err:  # ConfigError is a ValueError, as is bad JSON
        parser.error(str(err))
    prefix = sys_prefix() if args.sys_prefix else args.prefix
    try:
        path = install(spec, name=args.name, user=args.user, prefix=prefix)
    except ConfigError as err:
        parser.error(str(err))
    except OSError as err:
        sys.stderr.write(f"{PROG}: cannot install the kernelspec: {err}\n")
        return 1
    sys.stdout.write(f"installed kernelspec {args.name} in {path}\n")
    return 0


def run() -> None:
    """The console script."""
    raise SystemExit(main())
