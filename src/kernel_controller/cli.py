"""Command-line interface of ``kernel-controller``.

Parsing only: ``main(argv)`` turns argv into an exit code. Nothing runs at import time.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

DESCRIPTION = """\
Run the Jupyter Kernel Controller: for every Kernel custom resource (jupyter.org/v1) it runs
one Pod with the kernel and one Service in front of the kernel's five ZeroMQ ports, publishes
the connection information as annotations, mirrors the Pod's state into the Kernel's status,
and deletes the Kernel when its kernel exits after being idle.
"""


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of ``kernel-controller``."""
    parser = argparse.ArgumentParser(
        prog="kernel-controller",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--kubeconfig",
        help="path to a kubeconfig (default: in-cluster config, else ~/.kube/config)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the controller; return the process exit code."""
    parser = build_parser()
    parser.parse_args(argv)
    sys.stderr.write(
        "kernel-controller: the controller loop is not built yet; run with --help for usage.\n"
    )
    return 1
