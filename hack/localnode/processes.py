"""The kernel processes of the local node, and the one reaper thread that notices their exit.

Contract:

- :meth:`ProcessTable.start` runs ``argv`` in a new session (its own process group), with
  stdin from ``/dev/null`` and stdout+stderr appended to a log file; at most one process per
  key (``namespace/name`` of the Pod) exists at a time.
- One reaper thread (``localnode-reaper``) looks at every running process each
  ``poll_interval`` seconds. When a group leader has exited it SIGKILLs what is left of its
  group (as a container runtime does when a container's main process ends), reaps it, records
  the exit code (``128 + signal`` for a signal death) and finish time, then calls
  ``on_exit(key)`` (the node enqueues the Pod). It also delivers the SIGKILL of
  :meth:`terminate` once the grace period is over. Leaders are checked with
  ``waitid(WNOWAIT)`` so the group id cannot be reused before the group is killed.
- :meth:`shutdown` (node exit) SIGTERMs every group, waits up to a grace period, SIGKILLs the
  rest and reaps them; call it after :meth:`stop`/:meth:`join` of the reaper.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from localnode.podstatus import now_rfc3339

log = logging.getLogger(__name__)

POLL_INTERVAL_SECONDS = 0.2
JOIN_TIMEOUT_SECONDS = 10.0
LOG_TAIL_LINES, LOG_TAIL_BYTES = 80, 2048


@dataclass
class KernelProcess:
    """One process; ``exit_code``/``finished_at`` are set by the reaper (under the table lock)."""

    key: str
    uid: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    started_at: str
    exit_code: int | None = None
    finished_at: str | None = None
    kill_at: float | None = None  # monotonic deadline of the SIGKILL after a SIGTERM
    terminating: bool = field(default=False)

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def container_id(self) -> str:
        return f"localnode://{self.pid}"


class ProcessTable:
    """The running (and exited, not yet forgotten) processes; see the module docstring."""

    def __init__(
        self, on_exit: Callable[[str], None], *, poll_interval: float = POLL_INTERVAL_SECONDS
    ) -> None:
        self._on_exit = on_exit
        self._poll_interval = poll_interval
        self._lock = threading.Lock()
        self._procs: dict[str, KernelProcess] = {}  # guarded by _lock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="localnode-reaper")

    # ------------------------------------------------------------ processes
    def start(
        self,
        key: str,
        uid: str,
        *,
        argv: Sequence[str],
        env: Mapping[str, str],
        cwd: Path,
        log_path: Path,
    ) -> KernelProcess:
        """Start the process of ``key``; raises ``OSError`` when it cannot be started."""
        with self._lock:
            if key in self._procs:
                raise RuntimeError(f"{key} already has a process")
        cwd.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as out:
            out.write(f"=== {now_rfc3339()} localnode starting {key} (uid {uid})\n".encode())
            out.flush()
            popen = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=dict(env),
                cwd=cwd,
                start_new_session=True,
            )
        proc = KernelProcess(
            key=key, uid=uid, popen=popen, log_path=log_path, started_at=now_rfc3339()
        )
        with self._lock:
            self._procs[key] = proc
        return proc

    def get(self, key: str) -> KernelProcess | None:
        with self._lock:
            return self._procs.get(key)

    def terminate(self, key: str, grace: float) -> None:
        """SIGTERM the group of ``key`` (once) and SIGKILL it after ``grace`` seconds."""
        with self._lock:
            proc = self._procs.get(key)
            if proc is None or proc.exit_code is not None or proc.terminating:
                return
            proc.terminating = True
            proc.kill_at = time.monotonic() + grace
        _signal_group(proc.pid, signal.SIGTERM)

    def forget(self, key: str) -> None:
        """Drop the record of ``key``'s exited process (a no-op while it runs)."""
        with self._lock:
            proc = self._procs.get(key)
            if proc is not None and proc.exit_code is not None:
                del self._procs[key]

    def running(self) -> int:
        with self._lock:
            return sum(1 for p in self._procs.values() if p.exit_code is None)

    # --------------------------------------------------------------- reaper
    def start_reaper(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float = JOIN_TIMEOUT_SECONDS) -> None:
        if self._thread.ident is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self._poll_interval):
            try:
                for key in self.poll_once():
                    self._on_exit(key)
            except Exception:
                log.exception("reaper pass failed")

    def poll_once(self) -> list[str]:
        """Reap the exited processes and deliver due SIGKILLs; the keys that exited."""
        with self._lock:
            running = [p for p in self._procs.values() if p.exit_code is None]
        exited: list[str] = []
        now = time.monotonic()
        for proc in running:
            if _leader_exited(proc.pid):
                self._reap(proc)
                exited.append(proc.key)
            elif proc.kill_at is not None and now >= proc.kill_at:
                log.info("grace period over: SIGKILL to %s (pid %d)", proc.key, proc.pid)
                _signal_group(proc.pid, signal.SIGKILL)
                with self._lock:
                    proc.kill_at = None
        return exited

    def _reap(self, proc: KernelProcess) -> None:
        """Kill what is left of the group of an exited (or killed) leader, reap and record it."""
        _signal_group(proc.pid, signal.SIGKILL)  # the zombie leader still holds the group id
        code = proc.popen.wait()
        exit_code = 128 - code if code < 0 else code
        with self._lock:
            proc.exit_code = exit_code
            proc.finished_at = now_rfc3339()
            proc.kill_at = None
        log.info("process of %s (pid %d) exited with %d", proc.key, proc.pid, exit_code)

    # ------------------------------------------------------------- shutdown
    def shutdown(self, grace: float) -> None:
        """Stop every process: SIGTERM, up to ``grace`` seconds, SIGKILL; all reaped."""
        with self._lock:
            running = [p for p in self._procs.values() if p.exit_code is None]
        for proc in running:
            _signal_group(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        waiter = threading.Event()  # never set: an interruptible pause between passes
        while self.running() and time.monotonic() < deadline:
            self.poll_once()
            waiter.wait(min(self._poll_interval, 0.05))
        with self._lock:
            left = [p for p in self._procs.values() if p.exit_code is None]
        for proc in left:
            _signal_group(proc.pid, signal.SIGKILL)
        for proc in left:
            self._reap(proc)
        log.info("stopped %d kernel process(es), %d killed", len(running), len(left))


def _leader_exited(pid: int) -> bool:
    """Whether ``pid`` (our child) has exited, without reaping it."""
    try:
        result = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True  # already reaped
    return result is not None


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def log_tail(path: Path) -> str:
    """The last 80 lines (at most 2 KiB) of a process log, as a kubelet's fallback message."""
    try:
        with path.open("rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - LOG_TAIL_BYTES))
            data = f.read()
    except OSError:
        return ""
    return "\n".join(data.decode(errors="replace").splitlines()[-LOG_TAIL_LINES:])
