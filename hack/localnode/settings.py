"""Settings of the local node (from the command line)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_STATE_DIR = REPO_ROOT / ".localnode"
DEFAULT_LAUNCH_SCRIPT = REPO_ROOT / "kernel_launch" / "bootstrap-kernel.sh"


@dataclass(frozen=True)
class Settings:
    """What one local node does; every field has a command-line option."""

    node_name: str = "local-node"
    state_dir: Path = DEFAULT_STATE_DIR
    launch_script: Path = DEFAULT_LAUNCH_SCRIPT
    python: str = sys.executable  # KERNEL_PYTHON: the interpreter the kernels run with
    no_processes: bool = False  # status only: Running + Ready at once, no process
    namespace: str | None = None  # only Pods of this namespace (None: all namespaces)
    workers: int = 8
    max_grace_seconds: float = 30.0  # cap of a Pod's termination grace period
    shutdown_grace_seconds: float = 10.0  # SIGTERM → SIGKILL when the node stops
    heartbeat_seconds: float = 10.0

    @property
    def pods_dir(self) -> Path:
        return self.state_dir / "pods"
