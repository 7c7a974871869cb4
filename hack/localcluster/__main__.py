"""``python -m localcluster up|down|status|logs [--dir DIR]``: a detached local control plane.

``up`` starts it in the background (or reuses the one already running in DIR) and prints
``export KUBECONFIG=<path>`` as its last line; ``down`` stops only the processes it started.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from localcluster.controlplane import ControlPlane, ControlPlaneError, default_bin_dir
from localcluster.crds import install_crds

DEFAULT_DIR = Path(__file__).resolve().parents[2] / ".cluster"


CRD_DIR = Path(__file__).resolve().parents[2] / "config" / "crd" / "bases"


def up(work_dir: Path) -> int:
    plane = ControlPlane.attach(work_dir)
    if plane is not None and plane.healthy():
        print(f"reusing the control plane already running in {work_dir}", file=sys.stderr)
    else:
        if plane is not None:
            plane.stop()  # half-dead leftovers of an earlier run
        plane = ControlPlane(bin_dir=default_bin_dir(), work_dir=work_dir)
        crds = sorted(CRD_DIR.glob("*.yaml"))
        try:
            # CRDs first, so the garbage collector knows Kernels from its first discovery.
            plane.start(before_controller_manager=lambda: install_crds(plane.kubeconfig_path, crds))
        except ControlPlaneError as err:
            print(f"control plane failed to start: {err}", file=sys.stderr)
            return 1
        print(f"control plane running: {plane.server_url} (logs in {work_dir})")
    print(f"export KUBECONFIG={plane.kubeconfig_path}")
    return 0


def down(work_dir: Path) -> int:
    plane = ControlPlane.attach(work_dir)
    if plane is None:
        print(f"no control plane recorded in {work_dir}")
    else:
        plane.stop()
        print(f"control plane in {work_dir} stopped")
    return 0


def status(work_dir: Path) -> int:
    plane = ControlPlane.attach(work_dir)
    if plane is None or not plane.healthy():
        print("not running")
        return 1
    print(f"running: {plane.server_url}\nexport KUBECONFIG={plane.kubeconfig_path}")
    return 0


def logs(work_dir: Path) -> int:
    plane = ControlPlane.attach(work_dir)
    if plane is None:
        print(f"no control plane recorded in {work_dir}")
        return 1
    print(plane.diagnostics(lines=60))
    return 0


COMMANDS = {"up": up, "down": down, "status": status, "logs": logs}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="localcluster", description=__doc__)
    parser.add_argument("command", choices=sorted(COMMANDS))
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="state directory")
    args = parser.parse_args(argv)
    return COMMANDS[args.command](args.dir.resolve())


if __name__ == "__main__":
    raise SystemExit(main())
