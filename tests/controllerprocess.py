"""Run ``kernel-controller`` as a real process for tests: free loopback ports for metrics and
probes, output captured to a file, readiness polled, SIGTERM/SIGKILL on demand."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from eventually import eventually
from localcluster import free_port

EXECUTABLE = Path(sys.executable).with_name("kernel-controller")


class ControllerProcess:
    """One ``kernel-controller`` process started with ``args`` against ``kubeconfig``."""

    def __init__(
        self, *, kubeconfig: str, args: list[str], log_path: Path, env: dict[str, str] | None = None
    ) -> None:
        self.metrics_port = free_port()
        self.probe_port = free_port()
        self.log_path = log_path
        argv = [
            str(EXECUTABLE),
            f"--kubeconfig={kubeconfig}",
            f"--metrics-addr=127.0.0.1:{self.metrics_port}",
            f"--probe-addr=127.0.0.1:{self.probe_port}",
            *args,
        ]
        environ = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "KERNEL_"))}
        environ.update(env or {})
        self._log = log_path.open("ab")
        self.popen = subprocess.Popen(
            argv, stdout=self._log, stderr=subprocess.STDOUT, env=environ, start_new_session=True
        )

    def url(self, path: str) -> str:
        port = self.metrics_port if path == "/metrics" else self.probe_port
        return f"http://127.0.0.1:{port}{path}"

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.url(path), timeout=5) as resp:  # noqa: S310
                return int(resp.status), resp.read().decode()
        except urllib.error.HTTPError as err:
            return int(err.code), err.read().decode()

    def wait_ready(self, timeout: float = 60) -> None:
        def ready() -> bool:
            if self.popen.poll() is not None:
                raise AssertionError(f"controller exited {self.popen.returncode}:\n{self.output()}")
            with contextlib.suppress(OSError):
                return self.get("/readyz")[0] == 200
            return False

        eventually(ready, timeout=timeout, interval=0.2, message="controller not ready")

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Every sample of /metrics as ``(name, sorted labels) -> value``."""
        status, text = self.get("/metrics")
        assert status == 200
        samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return samples

    def value(self, metric: str, /, **labels: str) -> float | None:
        key = (metric, tuple(sorted(labels.items())))
        return self.metrics().get(key)

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def log_lines(self) -> list[dict[str, Any]]:
        lines = []
        for raw in self.output().splitlines():
            with contextlib.suppress(ValueError):
                lines.append(json.loads(raw))
        return lines

    def terminate(self, timeout: float = 30) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        return self.popen.wait(timeout)

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait(10)

    def close(self) -> None:
        if self.popen.poll() is None:
            self.kill()
        self._log.close()


class ControllerProcesses:
    """The controller processes of one test: ``start`` one, ``close`` kills them all and,
    when the test failed, prints their output (pytest attaches it to the report)."""

    def __init__(self, log_dir: Path) -> None:
        self._log_dir = log_dir
        self._procs: list[ControllerProcess] = []

    def start(
        self, kubeconfig: str, args: Sequence[str], env: dict[str, str] | None = None
    ) -> ControllerProcess:
        proc = ControllerProcess(
            kubeconfig=kubeconfig,
            args=list(args),
            log_path=self._log_dir / f"controller-{len(self._procs)}.log",
            env=env,
        )
        self._procs.append(proc)
        return proc

    def close(self, *, test_failed: bool) -> None:
        for n, proc in enumerate(self._procs):
            proc.kill()
            if test_failed:
                print(f"--- controller {n} output:\n{proc.output()[-6000:]}")  # noqa: T201
            proc.close()


def wait_exit(proc: ControllerProcess, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while proc.popen.poll() is None:
        if time.monotonic() > deadline:
            raise AssertionError("controller did not exit")
        time.sleep(0.1)  # polling a child process, bounded by the deadline
    return int(proc.popen.returncode)
