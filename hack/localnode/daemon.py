"""``python -m localnode.daemon up|down|status``: the local node as a background process.

- ``up --kubeconfig K [--dir D] [--node-name N] [-- extra node options]``: start
  ``python -m localnode`` detached (own session, stdin closed, output appended to
  ``D/node.log``), record its pid in ``D/node.pid`` and wait until it is ready (its
  ``--ready-file``); if the recorded node still runs, reuse it. Exit 1 if it fails to start.
- ``down [--dir D]``: SIGTERM exactly the recorded pid — after checking ``/proc/<pid>/cmdline``
  shows ``-m localnode`` — wait for it (SIGKILL after 60 s) and remove the pid file.
- ``status [--dir D]``: exit 0 if the recorded node runs.
"""

from __future__ import annotations

import argparse
import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from localnode.settings import DEFAULT_STATE_DIR, REPO_ROOT

START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 60.0
POLL_SECONDS = 0.1


def _pid_file(state_dir: Path) -> Path:
    return state_dir / "node.pid"


def recorded_pid(state_dir: Path) -> int | None:
    """The pid in the pid file if that process is a running local node."""
    try:
        pid = int(_pid_file(state_dir).read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return None
    is_node = any(pair == (b"-m", b"localnode") for pair in itertools.pairwise(cmdline))
    return pid if is_node else None


def _wait(check: Callable[[], bool], timeout: float) -> bool:
    """Poll ``check`` until it is true (True) or ``timeout`` seconds passed (False)."""
    pause = threading.Event()  # never set: an interruptible pause between checks
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        pause.wait(POLL_SECONDS)
    return check()


def up(state_dir: Path, kubeconfig: str, node_name: str, extra: Sequence[str]) -> int:
    log_path, ready = state_dir / "node.log", state_dir / "node.ready"
    pid = recorded_pid(state_dir)
    if pid is not None:
        print(f"reusing the local node already running (pid {pid})", file=sys.stderr)
        _print_where(state_dir, pid)
        return 0
    state_dir.mkdir(parents=True, exist_ok=True)
    ready.unlink(missing_ok=True)
    argv = [
        sys.executable, "-m", "localnode", f"--kubeconfig={Path(kubeconfig).resolve()}",
        f"--node-name={node_name}", f"--state-dir={state_dir}", f"--log-file={log_path}",
        f"--ready-file={ready}", *extra,
    ]  # fmt: skip
    env = dict(os.environ, PYTHONPATH=f"{REPO_ROOT / 'src'}:{REPO_ROOT / 'hack'}")
    with log_path.open("ab") as log:
        popen = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=REPO_ROOT,
            start_new_session=True,
        )
    _pid_file(state_dir).write_text(f"{popen.pid}\n")
    if not _wait(lambda: ready.exists() or popen.poll() is not None, START_TIMEOUT_SECONDS):
        print(f"local node not ready after {START_TIMEOUT_SECONDS:.0f} s", file=sys.stderr)
    if not ready.exists():
        print(f"local node failed to start; see {log_path}:", file=sys.stderr)
        print(_tail(log_path), file=sys.stderr)
        if popen.poll() is None:
            popen.terminate()
        popen.wait()
        _pid_file(state_dir).unlink(missing_ok=True)
        return 1
    _print_where(state_dir, popen.pid)
    return 0


def down(state_dir: Path) -> int:
    pid = recorded_pid(state_dir)
    if pid is None:
        print(f"no local node running (state in {state_dir})")
        _pid_file(state_dir).unlink(missing_ok=True)
        return 0
    os.kill(pid, signal.SIGTERM)
    if not _wait(lambda: not _alive(pid), STOP_TIMEOUT_SECONDS):
        print(f"local node (pid {pid}) did not stop: SIGKILL", file=sys.stderr)
        os.kill(pid, signal.SIGKILL)
    _pid_file(state_dir).unlink(missing_ok=True)
    print(f"local node (pid {pid}) stopped")
    return 0


def _alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return False
    return fields[0] != "Z"


def status(state_dir: Path) -> int:
    pid = recorded_pid(state_dir)
    if pid is None:
        print("not running")
        return 1
    _print_where(state_dir, pid)
    return 0


def _print_where(state_dir: Path, pid: int) -> None:
    print(f"local node running (pid {pid})")
    print(f"  node log:    {state_dir / 'node.log'}")
    print(f"  kernel logs: {state_dir / 'pods'}/<namespace>/<pod>-<uid>/container.log")


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="localnode.daemon", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--dir", type=Path, default=DEFAULT_STATE_DIR, help="state directory")
    parser.add_argument("--kubeconfig", help="kubeconfig (required for up)")
    parser.add_argument("--node-name", default="local-node")
    args, extra = parser.parse_known_args(argv)
    state_dir = args.dir.resolve()
    if args.command == "up":
        if not args.kubeconfig:
            parser.error("up needs --kubeconfig")
        return up(state_dir, args.kubeconfig, args.node_name, extra)
    return down(state_dir) if args.command == "down" else status(state_dir)


if __name__ == "__main__":
    raise SystemExit(main())
