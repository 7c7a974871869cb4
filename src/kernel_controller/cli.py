"""Command-line interface of ``kernel-controller``: flags and environment -> :class:`Settings`.

Contract:
- Every flag ``--x-y`` can also be set by the environment variable ``KERNEL_CONTROLLER_X_Y``;
  a flag on the command line wins over its variable, and a variable set to "" counts as unset.
  Unknown ``KERNEL_CONTROLLER_*`` variables are ignored (Kubernetes injects service-link
  variables such as ``KERNEL_CONTROLLER_SERVICE_HOST``). The kernel port defaults come from
  ``KERNEL_SHELL_PORT``, ``KERNEL_IOPUB_PORT``, ``KERNEL_STDIN_PORT``, ``KERNEL_HB_PORT`` and
  ``KERNEL_CONTROL_PORT``, as in the original controller.
- :func:`parse_settings` returns a valid :class:`Settings`, or raises :class:`SettingsError`
  (a bad value; names the flag or variable), :class:`UsageError` (argparse's complaint: an
  unknown flag, a missing value) or :class:`HelpShown` (``--help`` was printed to stdout).
- :func:`main` writes any of those errors as exactly one line on stderr and returns 2;
  ``--help`` returns 0. With valid settings it runs the controller
  (:class:`~kernel_controller.manager.Manager`) and returns its exit code: 0 after a clean
  shutdown, 1 when it fails (e.g. loses the leader Lease).

Nothing runs at import time; parsing reads only its arguments, the given environment, the
service-account namespace file and (to check it exists) the ``--kubeconfig`` path.
"""

from __future__ import annotations

import argparse
import enum
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from kernel_controller.settings import (
    MAX_WORKERS,
    NAMESPACE_FILE,
    LogFormat,
    LogLevel,
    Settings,
    SettingsError,
    env_var,
    in_cluster_namespace,
    parse_bool,
    parse_duration,
    parse_float,
    parse_int,
    parse_namespaces,
    parse_port,
    parse_whole_seconds,
)
from reconcilers.model import DEFAULT_PORTS, KernelPorts, KeyMode

__all__ = [
    "HelpShown",
    "SettingsError",
    "UsageError",
    "build_parser",
    "main",
    "parse_settings",
]

PROG = "kernel-controller"
USAGE_EXIT_CODE = 2

DESCRIPTION = """\
Run the Jupyter Kernel Controller: for every Kernel custom resource (jupyter.org/v1) it runs
one Pod with the kernel and one Service in front of the kernel's five ZeroMQ ports, publishes
the connection information as annotations, mirrors the Pod's state into the Kernel's status,
and deletes the Kernel when its kernel exits after being idle.

Every option can also be set through the environment variable named in its help
(KERNEL_CONTROLLER_<FLAG>); an option given on the command line wins.
"""

EPILOG = """\
values:
  durations      seconds ("90", "2.5") or Go-style durations ("90s", "15m", "1h30m", "500ms")
  booleans (env) true/false, 1/0, yes/no
  addresses      host:port or :port (all interfaces); 0 disables the endpoint

kernel port defaults (environment only; used when a Kernel's container sets no port):
  KERNEL_SHELL_PORT (52317)  KERNEL_IOPUB_PORT (52318)  KERNEL_STDIN_PORT (52319)
  KERNEL_HB_PORT (52320)     KERNEL_CONTROL_PORT (52321)

exit codes: 0 after a clean shutdown (SIGTERM); 2 for an invalid configuration (one line
on stderr); another non-zero code when the controller fails, e.g. loses the leader Lease.
"""

CLUSTER = "connection to the cluster"
KERNELS = "kernels"
LEADER = "leader election"
OBSERVABILITY = "observability"
GROUPS = (CLUSTER, KERNELS, LEADER, OBSERVABILITY)


class UsageError(Exception):
    """The command line itself is wrong (argparse's message: unknown flag, missing value)."""


class HelpShown(Exception):
    """``--help`` was asked for and has been written to stdout."""


@dataclass(frozen=True)
class Option:
    """One flag: its help text, its default as shown, and the parser of its text."""

    flag: str
    group: str
    help: str
    default: str
    parse: Callable[[str], object]
    metavar: str | None = None  # None: a boolean switch with a --no- form

    @property
    def dest(self) -> str:
        return self.flag.removeprefix("--").replace("-", "_")

    @property
    def env(self) -> str:
        return env_var(self.flag)


def _choice(kind: type[enum.Enum]) -> Callable[[str], object]:
    names = [member.value for member in kind]

    def parse(text: str) -> object:
        for member in kind:
            if member.value == text.strip().lower():
                return member
        raise ValueError(f"{text!r} is not one of {', '.join(names)}")

    return parse


def _address(text: str) -> str:
    return text  # checked by Settings (split_address), kept as written


def _name(text: str) -> str:
    return text.strip()  # checked by Settings (DNS-1123)


def _kubeconfig(text: str) -> str:
    path = os.path.expanduser(text.strip())
    if not path:
        raise ValueError("must be the path of a kubeconfig file")
    if not os.path.isfile(path):
        raise ValueError(f"{text!r} is not a file")
    return path


OPTIONS: tuple[Option, ...] = (
    Option("--kubeconfig", CLUSTER, "kubeconfig file to reach the API server",
           "the in-cluster service account, else ~/.kube/config", _kubeconfig, "PATH"),
    Option("--namespaces", CLUSTER, "comma-separated namespaces whose Kernels to serve",
           "all namespaces", parse_namespaces, "NS[,NS...]"),
    Option("--qps", CLUSTER,
           "client-side limit of requests per second to the API server; 0 or less is off, "
           "leaving the API server's Priority and Fairness to protect it (429 answers are "
           "retried after their Retry-After)", "off", parse_float, "N"),
    Option("--burst", CLUSTER, "requests allowed in a burst above --qps; 0 or less: --qps "
           "rounded up", "--qps rounded up", parse_int, "N"),
    Option("--workers", KERNELS, f"Kernels reconciled in parallel, 1..{MAX_WORKERS}",
           "4", parse_int, "N"),
    Option("--cluster-domain", KERNELS,
           "DNS domain of the cluster; kernels are reached at <kernel>.<namespace>.svc.<domain>",
           "cluster.local", _name, "DOMAIN"),
    Option("--connection-key", KERNELS,
           "where a kernel's HMAC key lives: kernel-id (the key is the kernel id, published in "
           "the connection-info annotation, as existing clients expect) or secret (a random key "
           "in the Secret <kernel>-connection, never published)",
           "kernel-id", _choice(KeyMode), "{kernel-id,secret}"),
    Option("--failed-kernel-ttl", KERNELS,
           "how long a Kernel whose kernel failed is kept for inspection before it is deleted; "
           "0 deletes it at once", "1h", parse_duration, "DURATION"),
    Option("--default-idle-timeout", KERNELS,
           "idle timeout for kernels that set none: an idle kernel exits after this long and "
           "its Kernel is deleted; 0 = never (whole seconds)", "0", parse_whole_seconds,
           "DURATION"),
    Option("--readiness-probe", KERNELS,
           "give kernel containers without a readiness probe a TCP probe on the shell port, "
           "so Ready means the kernel listens", "on", parse_bool),
    Option("--reissue-pod-events", KERNELS,
           "re-issue a kernel Pod's Warning events (image pull, scheduling) on its Kernel",
           "on", parse_bool),
    Option("--shutdown-timeout", KERNELS,
           "on SIGTERM, how long to let reconciles in flight finish before exiting",
           "10s", parse_duration, "DURATION"),
    Option("--enable-leader-election", LEADER,
           "take a Lease so that only one replica reconciles; needed with more than one "
           "replica", "off", parse_bool),
    Option("--leader-election-namespace", LEADER, "namespace of the Lease",
           "the controller Pod's namespace, else default", _name, "NS"),
    Option("--leader-election-id", LEADER, "name of the Lease", "kernel-controller", _name,
           "NAME"),
    Option("--lease-duration", LEADER,
           "how long followers wait after the last renewal before taking over",
           "15s", parse_duration, "DURATION"),
    Option("--renew-deadline", LEADER,
           "how long the leader retries renewing before it gives up (and exits); must be less "
           "than --lease-duration and more than 1.2 x --retry-period", "10s", parse_duration,
           "DURATION"),
    Option("--retry-period", LEADER, "pause between attempts to acquire or renew the Lease",
           "2s", parse_duration, "DURATION"),
    Option("--metrics-addr", OBSERVABILITY, "address of the Prometheus /metrics endpoint",
           ":8080", _address, "ADDR"),
    Option("--probe-addr", OBSERVABILITY, "address of the /healthz and /readyz endpoints",
           ":8081", _address, "ADDR"),
    Option("--log-level", OBSERVABILITY, "least severe log level written",
           "info", _choice(LogLevel), "{debug,info,warning,error}"),
    Option("--log-format", OBSERVABILITY, "json (one object per line) or text",
           "json", _choice(LogFormat), "{json,text}"),
)  # fmt: skip


class _Parser(argparse.ArgumentParser):
    """Raises instead of exiting, so that :func:`main` decides what is printed."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if status == 0 and message is None:
            raise HelpShown
        raise UsageError(message or f"exit status {status}")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``kernel-controller``; every value is kept as text (or a bool)."""
    parser = _Parser(
        prog=PROG,
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    groups = {title: parser.add_argument_group(title) for title in GROUPS}
    for option in OPTIONS:
        text = f"{option.help} (default: {option.default}; env {option.env})"
        text = text.replace("%", "%%")
        if option.metavar is None:
            groups[option.group].add_argument(
                option.flag, dest=option.dest, action=argparse.BooleanOptionalAction, help=text
            )
        else:
            groups[option.group].add_argument(
                option.flag, dest=option.dest, metavar=option.metavar, help=text
            )
    return parser


def parse_settings(
    argv: Sequence[str],
    environ: Mapping[str, str],
    *,
    namespace_file: Path = NAMESPACE_FILE,
) -> Settings:
    """The settings from ``argv`` (without the program name) and ``environ``.

    Raises :class:`SettingsError`, :class:`UsageError` or :class:`HelpShown`.
    """
    args = build_parser().parse_args(list(argv))
    values: dict[str, Any] = {}
    for option in OPTIONS:
        given: str | bool | None = getattr(args, option.dest)
        if given is None:
            given = environ.get(option.env, "")
            if not given.strip():
                continue
        if isinstance(given, bool):
            values[option.dest] = given
            continue
        try:
            values[option.dest] = option.parse(given)
        except ValueError as exc:
            raise SettingsError(option.flag, str(exc)) from exc
    values.setdefault("leader_election_namespace", in_cluster_namespace(namespace_file))
    values["kernel_ports"] = _kernel_ports(environ)
    return Settings(**values)


def _kernel_ports(environ: Mapping[str, str]) -> KernelPorts:
    ports: dict[str, int] = {}
    for attr, env in KernelPorts.ENV:
        text = environ.get(env, "")
        try:
            ports[attr] = parse_port(text) if text.strip() else getattr(DEFAULT_PORTS, attr)
        except ValueError as exc:
            raise SettingsError(env, str(exc)) from exc
    return KernelPorts(**ports)


def main(
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    namespace_file: Path = NAMESPACE_FILE,
) -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``) and ``environ`` (default: ``os.environ``);
    return the process exit code."""
    try:
        settings = parse_settings(
            sys.argv[1:] if argv is None else argv,
            os.environ if environ is None else environ,
            namespace_file=namespace_file,
        )
    except HelpShown:
        return 0
    except SettingsError as exc:
        return _fail(str(exc))
    except UsageError as exc:
        return _fail(f"{exc} (see {PROG} --help)")
    from kernel_controller.manager import Manager  # noqa: PLC0415 - heavy imports after parsing

    return Manager(settings, environ=os.environ if environ is None else environ).run()


def _fail(message: str) -> int:
    sys.stderr.write(f"{PROG}: {' '.join(message.split())}\n")
    return USAGE_EXIT_CODE
