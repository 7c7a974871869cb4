"""What the benchmarks share: child processes with CPU and memory readings, percentiles, the API
server's request counts, and a bounded poll."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path

WRITE_VERBS = frozenset({"POST", "PUT", "PATCH", "DELETE", "APPLY"})
RequestCounts = dict[tuple[str, str], float]


def by_verb_and_resource(totals: Mapping[tuple[str, str, str], float]) -> RequestCounts:
    """``apiserver_request_total`` by (verb, resource, code), summed over the codes."""
    counts: RequestCounts = {}
    for (verb, resource, _code), count in totals.items():
        counts[(verb, resource)] = counts.get((verb, resource), 0.0) + count
    return counts


def requests_since(
    before: RequestCounts,
    after: RequestCounts,
    *,
    per: float = 1.0,
    writes_only: bool = False,
    digits: int | None = None,
) -> dict[str, float]:
    """The requests made between two readings, as ``"VERB resource"``, divided by ``per``
    (rounded to ``digits``); only the writes with ``writes_only``."""
    since: dict[str, float] = {}
    for verb, resource in sorted(after):
        new = after[(verb, resource)] - before.get((verb, resource), 0.0)
        if new > 0 and (verb in WRITE_VERBS or not writes_only):
            value = new / per
            since[f"{verb} {resource}"] = value if digits is None else round(value, digits)
    return since


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0–1) of ``values`` by the nearest-rank method; NaN when empty."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def cpu_seconds_of(pid: int) -> float:
    """User + system CPU seconds of a process (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds used by each process of the run between two readings."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.start = self._read()

    def _read(self) -> dict[str, float]:
        return {name: cpu_seconds_of(pid) for name, pid in self.pids.items()}

    def used(self) -> dict[str, float]:
        now = self._read()
        return {name: round(now[name] - self.start[name], 2) for name in self.pids}


class Proc:
    """A child process (local node or controller) with CPU and memory readings."""

    def __init__(self, argv: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.log = log.open("ab")
        self.popen = subprocess.Popen(
            argv, stdout=self.log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )

    def cpu_seconds(self) -> float:
        return cpu_seconds_of(self.popen.pid)

    def memory_mib(self, field: str) -> float:
        for line in Path(f"/proc/{self.popen.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(30)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)
        self.log.close()


def wait_until(
    predicate: Callable[[], bool], timeout: float, what: str, *, interval: float = 0.05
) -> float:
    """Poll ``predicate`` until it holds (returns the monotonic time it did) or ``timeout``
    seconds passed (``TimeoutError`` naming ``what``)."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise TimeoutError(what)
        time.sleep(interval)  # benchmark poll, bounded by the timeout
    return time.monotonic()


def http_ok(url: str) -> str | None:
    """The body of a 200 answer from ``url``, else None (also when nothing listens)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - loopback
            return str(resp.read().decode()) if resp.status == 200 else None
    except OSError:
        return None
