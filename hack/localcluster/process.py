"""One local server process: started in its own session, logging to a file, stoppable.

A ``ManagedProcess`` only ever signals the process it started itself (or, for a detached
cluster, the pid it recorded together with the executable path, checked before signalling).
All methods run on the caller's thread.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

STOP_GRACE_SECONDS = 10.0


class ManagedProcess:
    """A named server process whose output goes to ``log_path`` (appended across restarts)."""

    def __init__(
        self,
        name: str,
        *,
        argv: Sequence[str],
        log_path: Path,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self._env = dict(env) if env is not None else None
        self._popen: subprocess.Popen[bytes] | None = None
        self._adopted_pid: int | None = None

    @property
    def pid(self) -> int | None:
        if self._popen is not None:
            return self._popen.pid
        return self._adopted_pid

    def start(self) -> None:
        """Start the process; it must not be running."""
        if self.alive():
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"\n=== {time.strftime('%H:%M:%S')} starting {self.name}\n".encode())
            log.flush()
            self._popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self._env,
                start_new_session=True,
            )
        self._adopted_pid = None

    def adopt(self, pid: int) -> None:
        """Take over a detached process started earlier by another harness process."""
        self._popen = None
        self._adopted_pid = pid

    def alive(self) -> bool:
        if self._popen is not None:
            return self._popen.poll() is None
        if self._adopted_pid is None:
            return False
        return _pid_runs(self._adopted_pid, self.argv[0])

    def exit_code(self) -> int | None:
        return self._popen.poll() if self._popen is not None else None

    def signal(self, signum: int) -> None:
        pid = self.pid
        if pid is not None and self.alive():
            os.kill(pid, signum)

    def pause(self) -> None:
        """Freeze the process (SIGSTOP): its sockets stay open but nothing is answered."""
        self.signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.signal(signal.SIGCONT)

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """SIGTERM, wait up to ``grace`` seconds, then SIGKILL. Idempotent."""
        if not self.alive():
            self._reap()
            return
        self.signal(signal.SIGCONT)  # a paused process cannot handle SIGTERM
        self.signal(signal.SIGTERM)
        if not self._wait_exit(grace):
            self.signal(signal.SIGKILL)
            self._wait_exit(grace)
        self._reap()

    def kill(self) -> None:
        """SIGKILL at once, as a crash would."""
        self.signal(signal.SIGKILL)
        self._wait_exit(STOP_GRACE_SECONDS)
        self._reap()

    def log_tail(self, lines: int = 40) -> str:
        try:
            with self.log_path.open("rb") as log:
                log.seek(0, os.SEEK_END)
                size = log.tell()
                log.seek(max(0, size - 64 * 1024))
                text = log.read().decode(errors="replace")
        except FileNotFoundError:
            return f"(no log at {self.log_path})"
        return "\n".join(text.splitlines()[-lines:])

    def _wait_exit(self, timeout: float) -> bool:
        if self._popen is not None:
            try:
                self._popen.wait(timeout)
            except subprocess.TimeoutExpired:
                return False
            return True
        deadline = time.monotonic() + timeout
        while self.alive():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)  # polling a pid we are not the parent of
        return True

    def _reap(self) -> None:
        if self._popen is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._popen.wait(0)


def _pid_runs(pid: int, executable: str) -> bool:
    """True when ``pid`` is a live, non-zombie process running ``executable``."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z" and bool(cmdline) and cmdline[0].decode(errors="replace") == executable
