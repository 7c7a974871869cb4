"""The controller's settings: one validated, immutable value built once at start-up.

Contract: a :class:`Settings` that exists is valid. ``__post_init__`` checks every field and
raises :class:`SettingsError` naming the command-line flag (``--workers``) or, for the kernel
port defaults, the environment variable (``KERNEL_SHELL_PORT``) to fix. Each field ``x_y``
is the flag ``--x-y`` and the environment variable ``KERNEL_CONTROLLER_X_Y`` (SPEC §4);
``kernel_ports`` comes from ``KERNEL_*_PORT``.

The value parsers here (:func:`parse_duration`, :func:`parse_bool`, :func:`split_address`, …)
turn the text of a flag or an environment variable into a field value, raising ``ValueError``
with a readable reason. No setting is a secret (the kernels' HMAC keys are per Kernel and
never pass through here); :meth:`Settings.as_log_dict` is what the start-up log line shows.

Pure values and pure functions, except :func:`in_cluster_namespace`, which reads one file.
Nothing runs at import time. Safe to share between threads.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from leader import LeaderElectionConfig
from reconcilers.model import DEFAULT_PORTS, KernelPorts, KeyMode, ReconcileSettings

ENV_PREFIX = "KERNEL_CONTROLLER_"
NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
FALLBACK_NAMESPACE = "default"
MAX_WORKERS = 64
JITTER_FACTOR = 1.2  # the leader package's rule: renew_deadline > 1.2 x retry_period

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_INTEGER = re.compile(r"[+-]?[0-9]+")
_NUMBER = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)")
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})


class SettingsError(ValueError):
    """An invalid setting. ``flag`` is ``--name`` for a flag, else an environment variable."""

    def __init__(self, flag: str, message: str) -> None:
        super().__init__(flag, message)
        self.flag = flag
        self.message = message

    @property
    def source(self) -> str:
        """How the user sets it: ``--workers (KERNEL_CONTROLLER_WORKERS)`` or the env var."""
        if self.flag.startswith("--"):
            return f"{self.flag} ({env_var(self.flag)})"
        return self.flag

    def __str__(self) -> str:
        return f"invalid value for {self.source}: {self.message}"


class LogLevel(enum.Enum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class LogFormat(enum.Enum):
    JSON = "json"
    TEXT = "text"


def env_var(flag: str) -> str:
    """``--metrics-addr`` -> ``KERNEL_CONTROLLER_METRICS_ADDR``."""
    return ENV_PREFIX + flag.removeprefix("--").upper().replace("-", "_")


def in_cluster_namespace(path: Path = NAMESPACE_FILE) -> str:
    """The Pod's namespace from the service-account mount, else ``"default"``."""
    try:
        namespace = path.read_text(encoding="utf-8").strip()
    except OSError:
        return FALLBACK_NAMESPACE
    return namespace or FALLBACK_NAMESPACE


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Every setting of the controller (SPEC §4, §6). Durations are in seconds.

    Invariants (checked at construction): addresses are ``host:port``, ``:port`` or ``"0"``
    (disabled); ``namespaces`` (empty = all) and ``leader_election_namespace`` are DNS-1123
    labels; ``lease_duration > renew_deadline > 1.2 x retry_period > 0``; ``1 <= workers <=
    64``; the other durations are ``>= 0``; the five
    kernel ports are distinct and in 1..65535.
    """

    metrics_addr: str = ":8080"
    probe_addr: str = ":8081"
    enable_leader_election: bool = False
    leader_election_namespace: str = field(default_factory=in_cluster_namespace)
    leader_election_id: str = "kernel-controller"
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    # Client-side throttle, off by default (as controller-runtime 0.21+ and the API server's
    # Priority and Fairness intend): on when qps > 0; 0 or a negative value is off, as in
    # client-go. burst <= 0 with qps > 0 means a burst of max(1, ceil(qps)).
    qps: float = 0.0
    burst: int = 0
    kubeconfig: str | None = None
    namespaces: tuple[str, ...] = ()
    workers: int = 4
    cluster_domain: str = "cluster.local"
    connection_key: KeyMode = KeyMode.KERNEL_ID
    failed_kernel_ttl: float = 3600.0
    default_idle_timeout: int = 0
    readiness_probe: bool = True
    reissue_pod_events: bool = True
    log_level: LogLevel = LogLevel.INFO
    log_format: LogFormat = LogFormat.JSON
    shutdown_timeout: float = 10.0
    kernel_ports: KernelPorts = DEFAULT_PORTS

    def __post_init__(self) -> None:
        for flag in ("--metrics-addr", "--probe-addr"):
            _check(flag, split_address, getattr(self, _field(flag)))
        _check("--leader-election-namespace", dns_label, self.leader_election_namespace)
        _check("--leader-election-id", dns_subdomain, self.leader_election_id)
        _check("--cluster-domain", dns_subdomain, self.cluster_domain)
        for namespace in self.namespaces:
            _check("--namespaces", dns_label, namespace)
        for flag in ("--lease-duration", "--renew-deadline", "--retry-period"):
            value = getattr(self, _field(flag))
            _require(flag, value > 0, f"must be greater than 0, got {value:g}")
        for flag in ("--failed-kernel-ttl", "--default-idle-timeout", "--shutdown-timeout"):
            value = getattr(self, _field(flag))
            _require(flag, value >= 0, f"must not be negative, got {value:g}")
        _require("--qps", math.isfinite(self.qps), f"must be a finite number, got {self.qps}")
        _require(
            "--workers",
            1 <= self.workers <= MAX_WORKERS,
            f"must be 1..{MAX_WORKERS}, got {self.workers}",
        )
        if self.kubeconfig is not None:
            _require("--kubeconfig", bool(self.kubeconfig.strip()), "must not be empty")
        self._check_leader_timings()
        self._check_ports()

    def _check_leader_timings(self) -> None:
        lease, renew, retry = self.lease_duration, self.renew_deadline, self.retry_period
        _require(
            "--lease-duration",
            lease > renew,
            f"--lease-duration ({lease:g}s) must be greater than --renew-deadline ({renew:g}s)",
        )
        _require(
            "--renew-deadline",
            renew > JITTER_FACTOR * retry,
            f"--renew-deadline ({renew:g}s) must be greater than "
            f"{JITTER_FACTOR} x --retry-period ({JITTER_FACTOR * retry:g}s)",
        )
        try:  # the leader package has the final word on its rules
            self.leader_config("settings-check")
        except ValueError as exc:
            raise SettingsError("--lease-duration", str(exc)) from exc

    def _check_ports(self) -> None:
        seen: dict[int, str] = {}
        for attr, env in KernelPorts.ENV:
            port = getattr(self.kernel_ports, attr)
            _require(env, 1 <= port <= 65535, f"port {port} is not in 1..65535")
            _require(env, port not in seen, f"port {port} is also {seen.get(port)}")
            seen[port] = env

    def throttle(self) -> tuple[float, int] | None:
        """``(qps, burst)`` of the client-side token bucket, or None when there is none."""
        if self.qps <= 0:
            return None
        return self.qps, self.burst if self.burst > 0 else max(1, math.ceil(self.qps))

    def reconcile_settings(self) -> ReconcileSettings:
        """The controller-wide choices the Kernel reconciler takes."""
        return ReconcileSettings(
            default_ports=self.kernel_ports,
            cluster_domain=self.cluster_domain,
            key_mode=self.connection_key,
            readiness_probe=self.readiness_probe,
            default_idle_timeout=self.default_idle_timeout,
            failed_kernel_ttl=self.failed_kernel_ttl,
            reissue_pod_events=self.reissue_pod_events,
        )

    def leader_config(self, identity: str) -> LeaderElectionConfig:
        """The Lease this replica competes for, as ``identity`` (e.g. the Pod name)."""
        return LeaderElectionConfig(
            lease_name=self.leader_election_id,
            namespace=self.leader_election_namespace,
            identity=identity,
            lease_duration=self.lease_duration,
            renew_deadline=self.renew_deadline,
            retry_period=self.retry_period,
            release_on_cancel=True,
        )

    def as_log_dict(self) -> dict[str, Any]:
        """JSON-ready view for the start-up log line. Holds no secret (none is a setting)."""
        return {
            "metrics_addr": self.metrics_addr,
            "probe_addr": self.probe_addr,
            "enable_leader_election": self.enable_leader_election,
            "leader_election_namespace": self.leader_election_namespace,
            "leader_election_id": self.leader_election_id,
            "lease_duration": self.lease_duration,
            "renew_deadline": self.renew_deadline,
            "retry_period": self.retry_period,
            "qps": self.qps,
            "burst": self.burst,
            "kubeconfig": self.kubeconfig,
            "namespaces": list(self.namespaces),
            "workers": self.workers,
            "cluster_domain": self.cluster_domain,
            "connection_key": self.connection_key.value,
            "failed_kernel_ttl": self.failed_kernel_ttl,
            "default_idle_timeout": self.default_idle_timeout,
            "readiness_probe": self.readiness_probe,
            "reissue_pod_events": self.reissue_pod_events,
            "log_level": self.log_level.value,
            "log_format": self.log_format.value,
            "shutdown_timeout": self.shutdown_timeout,
            "kernel_ports": {attr: getattr(self.kernel_ports, attr) for attr, _ in KernelPorts.ENV},
        }


def _field(flag: str) -> str:
    return flag.removeprefix("--").replace("-", "_")


def _require(flag: str, ok: bool, message: str) -> None:
    if not ok:
        raise SettingsError(flag, message)


def _check(flag: str, parse: Callable[[str], object], value: str) -> None:
    try:
        parse(value)
    except ValueError as exc:
        raise SettingsError(flag, str(exc)) from exc


# Value parsers: text of a flag or env var -> field value; ValueError with the reason.


def parse_bool(text: str) -> bool:
    """``true/false``, ``1/0``, ``yes/no`` (any case)."""
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{text!r} is not a boolean (use true/false, 1/0 or yes/no)")


def parse_int(text: str) -> int:
    if not _INTEGER.fullmatch(text.strip()):
        raise ValueError(f"{text!r} is not an integer")
    return int(text.strip())


def parse_float(text: str) -> float:
    value = float(text.strip()) if _NUMBER.fullmatch(text.strip()) else math.nan
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not a number")
    return value


def parse_duration(text: str) -> float:
    """Seconds from ``"90"``, ``"1.5"`` or a Go duration (``"1h30m"``, ``"500ms"``, ``"0"``)."""
    value = text.strip()
    if _NUMBER.fullmatch(value):
        return parse_float(value)
    sign, body = (-1.0, value[1:]) if value[:1] == "-" else (1.0, value.removeprefix("+"))
    seconds, position = 0.0, 0
    while position < len(body):
        part = _DURATION_PART.match(body, position)
        if part is None:
            break
        seconds += float(part.group(1)) * _UNIT_SECONDS[part.group(2)]
        position = part.end()
    if not body or position != len(body) or not math.isfinite(seconds):
        raise ValueError(
            f"{text!r} is not a duration (use seconds, or e.g. 90s, 15m, 1h30m, 500ms)"
        )
    return sign * seconds


def parse_whole_seconds(text: str) -> int:
    """A duration that is a whole number of seconds (``"1h"`` -> 3600)."""
    seconds = parse_duration(text)
    if seconds != int(seconds):
        raise ValueError(f"{text!r} is not a whole number of seconds")
    return int(seconds)


def parse_namespaces(text: str) -> tuple[str, ...]:
    """A comma list of namespace names, blanks ignored, duplicates dropped; empty = all."""
    names = (name.strip() for name in text.split(","))
    return tuple(dict.fromkeys(name for name in names if name))


def parse_port(text: str) -> int:
    port = parse_int(text)
    if not 1 <= port <= 65535:
        raise ValueError(f"port {port} is not in 1..65535")
    return port


def split_address(address: str) -> tuple[str, int] | None:
    """``"host:port"`` or ``":port"`` -> ``(host, port)`` (host "" = all interfaces);
    ``"0"`` -> ``None`` (the endpoint is disabled). IPv6 hosts in brackets: ``[::1]:8080``."""
    if address == "0":
        return None
    host, colon, port_text = address.rpartition(":")
    if not colon or not port_text.isascii() or not port_text.isdigit():
        raise ValueError(f"{address!r} is not host:port, :port or 0 (disabled)")
    port = int(port_text)
    if port > 65535:
        raise ValueError(f"port {port} in {address!r} is not in 0..65535")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        bad_host = not host or any(c not in "0123456789abcdefABCDEF:." for c in host)
    else:
        bad_host = any(c.isspace() or c in ":[]/" for c in host)
    if bad_host:
        raise ValueError(f"{address!r} has an invalid host")
    return host, port


def dns_label(name: str) -> str:
    """A DNS-1123 label: lower-case alphanumerics and '-', at most 63 characters."""
    if len(name) > 63 or not _DNS_LABEL.fullmatch(name):
        raise ValueError(
            f"{name!r} is not a valid namespace name (DNS-1123 label: at most 63 lower-case "
            "letters, digits and '-', starting and ending with a letter or digit)"
        )
    return name


def dns_subdomain(name: str) -> str:
    """A DNS-1123 subdomain: dot-separated labels, at most 253 characters."""
    if len(name) > 253 or not _DNS_SUBDOMAIN.fullmatch(name):
        raise ValueError(
            f"{name!r} is not a DNS-1123 subdomain (lower-case letters, digits, '-' and '.')"
        )
    return name
