"""Start an IPython kernel inside a kernel Pod, bound to the ports the controller chose.

Contract (the controller, ``bootstrap-kernel.sh`` and the local node agent rely on it):

- Environment read, and nothing else: ``KERNEL_ID``; ``KERNEL_KEY``; ``KERNEL_IP`` (default
  ``0.0.0.0``); ``KERNEL_SHELL_PORT``, ``KERNEL_IOPUB_PORT``, ``KERNEL_STDIN_PORT``,
  ``KERNEL_HB_PORT``, ``KERNEL_CONTROL_PORT``; ``KERNEL_IDLE_TIMEOUT`` (seconds, default 0 =
  never). The matching command-line options (``--kernel-id``, ``--kernel-shell-port``, …,
  ``--kernel-idle-timeout``) override the environment. A port that is unset or 0 is picked by
  the kernel itself (bind to port 0) and logged; the chosen ports are the ones reported.
- Transport ``tcp``, signature scheme ``hmac-sha256``; the signing key is ``KERNEL_KEY`` when it
  is set and non-empty, else the kernel id. No kernel id and no key is a usage error.
- The key is never printed (stdout/stderr) and never written to a file (no connection file is
  written); it leaves the process only in the response-address payload, when one is asked for
  without ``--public-key``. When the key is the kernel id, the kernel id is not logged either.
- Idle culling: with an idle timeout > 0 the process exits 0 once no execution has been running
  for that many seconds, counted from the end of the last execution (or from start-up). An
  execution in progress is never interrupted, however long it runs. The check is a periodic
  callback on the kernel's main IO loop, fed by a wrapper around the ``execute_request`` handler.
- Restart: a ``shutdown_request`` with ``restart`` stops the kernel as any shutdown does, then
  the process waits up to ``KERNEL_RESTART_GRACE_SECONDS`` (default 10) before it exits 0: a
  restart replaces the kernel's Pod (the provisioner deletes it right after sending the
  request), and a Pod deleted while its kernel is alive is replaced, not culled, whereas a
  Pod whose kernel exited 0 by itself is culled. SIGTERM (the deletion) ends the wait at once.
- Exit codes: 0 idle timeout, client ``shutdown_request`` (with ``restart``, after the grace
  above) or ``exit()`` in the kernel; 1 the kernel failed (a port
  could not be bound, an unknown kernel class, an exception escaped, the heartbeat thread
  died); 2 bad options or
  environment. Code run in the kernel may end the process with its own code (``os._exit(n)``);
  a signal ends it the usual way (143 for SIGTERM as seen by Kubernetes).
- ``--response-address host:port`` (optional): after binding, the connection info is sent once
  as plain JSON over TCP; a failure is logged as a warning and the kernel keeps running.
  Encryption with ``--public-key`` is not implemented: when a public key is given, the key is
  left out of the payload instead of being sent in clear.
- ``--port-range`` and ``--spark-context-initialization-mode`` are accepted for compatibility
  with Enterprise Gateway launch commands; the range is validated but not used (ports come from
  the environment or port 0), and no Spark context is created.

- Standby (warm pools, SPEC §13): with ``KERNEL_ACTIVATION_PORT`` set, the launcher imports
  ipykernel, IPython and the kernel class (everything slow) at once, then waits, binding no
  kernel port, for one activation: ``POST /activate`` on that port (at ``KERNEL_IP``) with
  ``Authorization: Bearer <KERNEL_ACTIVATION_TOKEN>`` and the kernel's identity as JSON
  (``kernel_id``, ``key``, the five ``ports``, ``idle_timeout``). A wrong token gets 401 and
  changes nothing; the answer (200, the ports) comes only once the kernel listens; a second
  activation with another identity gets 409 (the same one again gets the same 200, so the
  activator may retry). The port stays open for the Pod's readiness probe. The key comes
  only in that request: never in the environment, a file or a log line.

Log lines go to the process's original stderr (a duplicate of fd 2 taken before ipykernel
captures fd 1 and 2 for the notebook), one per event: settings, bound ports, exit reason.

Threads: ``main`` runs on the main thread, which also runs the kernel's IO loop, the idle check
and ``execute_request`` of the main shell; ipykernel's control, iopub, heartbeat and subshell
threads may call the hooks installed here, hence the locks in ``IdleTracker`` and ``ExitState``.
"""

from __future__ import annotations

import argparse
import contextlib
import enum
import functools
import hashlib
import hmac
import importlib
import inspect
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from copy import deepcopy
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NotRequired, TypedDict, cast

PORT_NAMES = ("shell", "iopub", "stdin", "hb", "control")
CONNECTION_PORT_ORDER = ("shell", "stdin", "iopub", "control", "hb")  # as in the annotation
DEFAULT_IP = "0.0.0.0"  # noqa: S104 - a Pod's kernel listens on the Pod IP
DEFAULT_KERNEL_CLASS = "ipykernel.ipkernel.IPythonKernel"
SPARK_MODES = ("none", "lazy", "eager")
RESPONSE_TIMEOUT_SECONDS = 10.0
DEFAULT_RESTART_GRACE_SECONDS = 10.0
ACTIVATION_TIMEOUT_SECONDS = 60.0  # an activation request waits at most this for the kernel
MAX_ACTIVATION_BYTES = 16_384
LOGGER_NAME = "launch_ipykernel"


class ExitReason(enum.Enum):
    """Why the kernel process ends; ``exit_code`` maps it to the process exit code."""

    IDLE = "idle timeout"
    SHUTDOWN_REQUEST = "shutdown_request from a client"
    RESTART_REQUEST = "shutdown_request with restart from a client"
    LOOP_STOPPED = "the kernel's event loop stopped (exit() in the kernel)"
    HEARTBEAT_DIED = "the heartbeat thread died (its port could not be bound?)"
    CRASHED = "the kernel failed"


def exit_code(reason: ExitReason) -> int:
    """0 for an exit on purpose (culling, shutdown), 1 for a failure."""
    if reason in (
        ExitReason.IDLE,
        ExitReason.SHUTDOWN_REQUEST,
        ExitReason.RESTART_REQUEST,
        ExitReason.LOOP_STOPPED,
    ):
        return 0
    return 1


class ConnectionInfo(TypedDict):
    """The JSON sent to ``--response-address`` (key order as in the controller's annotation)."""

    shell_port: int
    stdin_port: int
    iopub_port: int
    control_port: int
    hb_port: int
    ip: str
    key: NotRequired[str]
    transport: str
    signature_scheme: str
    kernel_name: str
    pid: int


@dataclass(frozen=True)
class LaunchSettings:
    """Everything the launcher needs, resolved from options and environment (immutable)."""

    kernel_id: str
    key: str = field(repr=False)  # never in a repr, a log line or a traceback's message
    ip: str
    ports: Mapping[str, int]  # PORT_NAMES -> port, 0 = let the kernel pick
    idle_timeout: float  # seconds, 0 = never cull
    kernel_class_name: str = DEFAULT_KERNEL_CLASS
    response_address: tuple[str, int] | None = None
    public_key: str | None = None
    port_range: tuple[int, int] | None = None
    spark_context_init_mode: str = "none"
    restart_grace: float = DEFAULT_RESTART_GRACE_SECONDS  # seconds to wait after a restart

    @property
    def key_is_kernel_id(self) -> bool:
        return self.key == self.kernel_id


def parse_port(name: str, raw: str | None) -> int:
    """A port from an option or env value: empty/None -> 0 (kernel picks), else 0-65535."""
    if raw is None or not raw.strip():
        return 0
    try:
        port = int(raw.strip())
    except ValueError:
        raise ValueError(f"{name}: {raw!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"{name}: {port} is not in 0-65535")
    return port


def parse_idle_timeout(raw: str | None) -> float:
    """Idle timeout in seconds: empty/None -> 0 (never), else a number >= 0."""
    if raw is None or not raw.strip():
        return 0.0
    try:
        seconds = float(raw.strip())
    except ValueError:
        raise ValueError(f"idle timeout: {raw!r} is not a number of seconds") from None
    if not seconds >= 0 or seconds == float("inf"):
        raise ValueError(f"idle timeout: {raw!r} must be a finite number >= 0")
    return seconds


def parse_port_range(raw: str | None) -> tuple[int, int] | None:
    """Enterprise Gateway's ``lower..upper``; ``0..0`` or empty means no range (None)."""
    if raw is None or not raw.strip():
        return None
    lower_s, sep, upper_s = raw.strip().partition("..")
    if not sep:
        raise ValueError(f"port range: {raw!r} is not of the form lower..upper")
    lower, upper = parse_port("port range", lower_s), parse_port("port range", upper_s)
    if (lower, upper) == (0, 0):
        return None
    if lower > upper:
        raise ValueError(f"port range: {raw!r} has lower > upper")
    return lower, upper


def parse_response_address(raw: str | None) -> tuple[str, int] | None:
    """``host:port`` (``[v6]:port`` too) -> (host, port); empty/None -> None."""
    if raw is None or not raw.strip():
        return None
    host, sep, port_s = raw.strip().rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host:
        raise ValueError(f"response address: {raw!r} is not of the form host:port")
    port = parse_port("response address", port_s)
    if port == 0:
        raise ValueError(f"response address: {raw!r} needs a port")
    return host, port


def check_interval(idle_timeout: float) -> float:
    """How often the check runs: a tenth of the timeout, between 0.1 s and 5 s; every second
    when there is no timeout (the heartbeat thread is still watched)."""
    if idle_timeout <= 0:
        return 1.0
    return min(5.0, max(0.1, idle_timeout / 10))


def build_parser() -> argparse.ArgumentParser:
    """The command line; the Enterprise Gateway spellings are accepted as aliases."""
    parser = argparse.ArgumentParser(
        prog="launch_ipykernel.py",
        description="Start an IPython kernel on the ports given by KERNEL_*_PORT.",
        epilog="Also accepted: --name_with_underscores and --RemoteProcessProxy.name.",
    )

    def option(name: str, metavar: str, help_text: str) -> None:
        underscored = name.replace("-", "_")
        aliases = (
            f"--{underscored}",
            f"--RemoteProcessProxy.{name}",
            f"--RemoteProcessProxy.{underscored}",
        )
        parser.add_argument(f"--{name}", dest=underscored, metavar=metavar, help=help_text)
        parser.add_argument(*aliases, dest=underscored, help=argparse.SUPPRESS)

    option("kernel-id", "ID", "kernel id (default: env KERNEL_ID)")
    option("port-range", "LOW..HIGH", "accepted for compatibility, not used")
    option("response-address", "HOST:PORT", "send the connection info there once (optional)")
    option("public-key", "KEY", "receiver's public key: the key is then not sent (no encryption)")
    option("spark-context-initialization-mode", "MODE", "none (lazy, eager: not implemented)")
    option("kernel-class-name", "CLASS", f"kernel class (default {DEFAULT_KERNEL_CLASS})")
    for port in PORT_NAMES:
        option(f"kernel-{port}-port", "PORT", f"default: env KERNEL_{port.upper()}_PORT")
    option("kernel-idle-timeout", "SECONDS", "default: env KERNEL_IDLE_TIMEOUT; 0 = never")
    return parser


def resolve_settings(args: argparse.Namespace, env: Mapping[str, str]) -> LaunchSettings:
    """Options override the environment; raises ``ValueError`` with a one-line message."""
    kernel_id = args.kernel_id or env.get("KERNEL_ID", "")
    key = env.get("KERNEL_KEY") or kernel_id
    if not key:
        raise ValueError("no KERNEL_ID (or --kernel-id) and no KERNEL_KEY: nothing to sign with")
    ports = {
        name: parse_port(
            f"KERNEL_{name.upper()}_PORT",
            getattr(args, f"kernel_{name}_port") or env.get(f"KERNEL_{name.upper()}_PORT"),
        )
        for name in PORT_NAMES
    }
    mode = (args.spark_context_initialization_mode or "none").lower()
    if mode not in SPARK_MODES:
        raise ValueError(f"spark context initialization mode: {mode!r} is not one of {SPARK_MODES}")
    return LaunchSettings(
        kernel_id=kernel_id,
        key=key,
        ip=env.get("KERNEL_IP") or DEFAULT_IP,
        ports=ports,
        idle_timeout=parse_idle_timeout(args.kernel_idle_timeout or env.get("KERNEL_IDLE_TIMEOUT")),
        kernel_class_name=args.kernel_class_name or DEFAULT_KERNEL_CLASS,
        response_address=parse_response_address(args.response_address),
        public_key=args.public_key or None,
        port_range=parse_port_range(args.port_range),
        spark_context_init_mode=mode,
        restart_grace=parse_restart_grace(env.get("KERNEL_RESTART_GRACE_SECONDS")),
    )


def parse_restart_grace(raw: str | None) -> float:
    """Seconds to wait for the Pod's replacement after a restart request (default 10)."""
    if raw is None or not raw.strip():
        return DEFAULT_RESTART_GRACE_SECONDS
    try:
        seconds = float(raw.strip())
    except ValueError:
        raise ValueError(f"KERNEL_RESTART_GRACE_SECONDS: {raw!r} is not a number") from None
    if not 0 <= seconds < float("inf"):
        raise ValueError(f"KERNEL_RESTART_GRACE_SECONDS: {raw!r} is not a number >= 0")
    return seconds


def advertised_ip(bind_ip: str, resolve_host: Callable[[], str]) -> str:
    """The address clients should use: the bind IP, or this host's address for a wildcard."""
    if bind_ip in ("0.0.0.0", "*", "", "::"):  # noqa: S104
        try:
            return resolve_host()
        except OSError:
            return bind_ip
    return bind_ip


def connection_info(
    settings: LaunchSettings, *, ports: Mapping[str, int], ip: str, pid: int
) -> ConnectionInfo:
    """The connection info for the response address; no key when a public key was given."""
    info: dict[str, Any] = {f"{name}_port": ports[name] for name in CONNECTION_PORT_ORDER}
    info["ip"] = ip
    if settings.public_key is None:
        info["key"] = settings.key
    info.update(transport="tcp", signature_scheme="hmac-sha256", kernel_name="", pid=pid)
    return cast(ConnectionInfo, info)


class IdleTracker:
    """Counts running executions and remembers when the last one ended.

    Invariant: ``idle_seconds()`` is 0 while an execution runs; otherwise the time since the
    last execution ended, or since the tracker was created if none ran.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._running = 0  # guarded by _lock
        self._idle_since = clock()  # guarded by _lock

    def execution_started(self) -> None:
        with self._lock:
            self._running += 1

    def execution_finished(self) -> None:
        with self._lock:
            self._running = max(0, self._running - 1)
            self._idle_since = self._clock()

    def idle_seconds(self) -> float:
        with self._lock:
            return 0.0 if self._running else max(0.0, self._clock() - self._idle_since)


def decide_exit(
    *, idle_timeout: float, idle_seconds: float, heartbeat_alive: bool
) -> ExitReason | None:
    """The idle check's decision: a reason to exit now, or None to keep running."""
    if not heartbeat_alive:
        return ExitReason.HEARTBEAT_DIED
    if idle_timeout > 0 and idle_seconds >= idle_timeout:
        return ExitReason.IDLE
    return None


class ExitState:
    """The first exit reason recorded wins (set from the main or the control thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reason: ExitReason | None = None  # guarded by _lock

    def record(self, reason: ExitReason) -> bool:
        with self._lock:
            if self._reason is not None:
                return False
            self._reason = reason
            return True

    @property
    def reason(self) -> ExitReason | None:
        with self._lock:
            return self._reason


def _level(reason: ExitReason) -> int:
    return logging.INFO if exit_code(reason) == 0 else logging.ERROR


def _open_log(stream_fd: int = 2) -> logging.Logger:
    """A logger on a duplicate of ``stream_fd``, so ipykernel's fd capture does not swallow it."""
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    if not logger.handlers:
        try:
            stream = open(os.dup(stream_fd), "w", buffering=1, encoding="utf-8")  # noqa: SIM115
        except OSError:
            stream = None
        handler = logging.StreamHandler(stream)
        handler.setFormatter(
            logging.Formatter("%(asctime)s launch_ipykernel %(levelname)s %(message)s")
        )
        logger.addHandler(handler)
    return logger


def send_connection_info(
    address: tuple[str, int], info: ConnectionInfo, log: logging.Logger
) -> bool:
    """Send ``info`` once as JSON to ``address``; a failure is a warning, never fatal."""
    try:
        with socket.create_connection(address, timeout=RESPONSE_TIMEOUT_SECONDS) as conn:
            conn.sendall(json.dumps(info).encode())
    except OSError as err:
        log.warning("could not send the connection info to %s:%d: %s", *address, err)
        return False
    log.info("sent the connection info to %s:%d (key included: %s)", *address, "key" in info)
    return True


@functools.cache
def _launcher_app_class() -> Any:
    """``IPKernelApp`` with the launcher's changes (built once: building a traitlets class
    costs ~15 ms, which a standby kernel pays before its activation)."""
    # Imported here, not at import time: the helpers stay importable (and cheap) without them.
    from ipykernel.kernelapp import IPKernelApp  # noqa: PLC0415
    from traitlets.config import Config  # noqa: PLC0415

    class KernelLauncherApp(IPKernelApp):
        forced = Config()  # set by _make_app before the instance is made

        def parse_command_line(self, argv: Any = None) -> None:
            """No command line (the launcher passes none): the forced settings take its
            place, with its priority over config files. Skips building traitlets' parser
            for every configurable class, ~10 ms of CPU in each kernel's start."""
            self.argv, self.extra_args = [], []
            self.cli_config = deepcopy(self.forced)
            self.update_config(self.cli_config)

        def init_connection_file(self) -> None:
            """No connection file: the controller publishes the connection info."""

        def write_connection_file(self, **kwargs: Any) -> None:
            """No connection file: it would hold the key."""

        def log_connection_info(self) -> None:
            self._ports = {name: getattr(self, f"{name}_port") for name in PORT_NAMES}

    return KernelLauncherApp


def _make_app(settings: LaunchSettings) -> Any:
    """The ``IPKernelApp`` singleton, configured from ``settings`` with priority over config
    files, writing no connection file (the key stays off the disk)."""
    from traitlets.config import Config  # noqa: PLC0415

    forced = Config()
    forced.IPKernelApp.ip = settings.ip
    forced.IPKernelApp.transport = "tcp"
    for name in PORT_NAMES:
        setattr(forced.IPKernelApp, f"{name}_port", settings.ports[name])
    forced.IPKernelApp.kernel_class = settings.kernel_class_name
    forced.IPKernelApp.parent_handle = 0  # nothing to watch: the Pod is the kernel's lifetime
    forced.IPKernelApp.interrupt = 0
    forced.Session.key = settings.key.encode()
    forced.Session.signature_scheme = "hmac-sha256"
    app_class = _launcher_app_class()
    app_class.forced = forced
    return app_class.instance()


def _install_hooks(
    kernel: Any, *, tracker: IdleTracker, exits: ExitState, log: logging.Logger
) -> None:
    """Observe executions (for idle culling) and shutdown requests (for the exit reason)."""
    execute = kernel.shell_handlers["execute_request"]

    async def execute_request(*args: Any) -> None:
        tracker.execution_started()
        try:
            result = execute(*args)
            if inspect.isawaitable(result):
                await result
        finally:
            tracker.execution_finished()

    kernel.shell_handlers["execute_request"] = execute_request

    for handlers in (kernel.shell_handlers, kernel.control_handlers):
        shutdown = handlers.get("shutdown_request")
        if shutdown is None:
            continue

        async def shutdown_request(*args: Any, _shutdown: Any = shutdown) -> None:
            reason = (
                ExitReason.RESTART_REQUEST
                if restart_requested(args)
                else ExitReason.SHUTDOWN_REQUEST
            )
            if exits.record(reason):
                log.info("%s received; stopping the kernel", reason.value)
            result = _shutdown(*args)
            if inspect.isawaitable(result):
                await result

        handlers["shutdown_request"] = shutdown_request


def restart_requested(handler_args: Sequence[Any]) -> bool:
    """Whether a ``shutdown_request`` handler's ``(stream, ident, parent)`` asks to restart."""
    parent = handler_args[-1] if handler_args else None
    content = parent.get("content") if isinstance(parent, Mapping) else None
    return bool(isinstance(content, Mapping) and content.get("restart"))


def run_kernel(
    settings: LaunchSettings,
    log: logging.Logger,
    *,
    on_listening: Callable[[Mapping[str, int]], None] | None = None,
    on_failure: Callable[[str], None] | None = None,
) -> int:
    """Bind, optionally report the connection info, serve until an exit reason; the exit code.

    ``on_listening`` is told the bound ports before serving starts; ``on_failure`` is told
    when the kernel could not get that far (standby activation).
    """
    shown_id = (
        "(not logged: it is the signing key)" if settings.key_is_kernel_id else settings.kernel_id
    )
    log.info(
        "starting python kernel: kernel id %s, key from %s, ip %s, ports %s, idle timeout %s",
        shown_id,
        "the kernel id" if settings.key_is_kernel_id else "KERNEL_KEY",
        settings.ip,
        " ".join(f"{n}={p or 'any'}" for n, p in settings.ports.items()),
        f"{settings.idle_timeout:g} s" if settings.idle_timeout > 0 else "none",
    )
    if settings.spark_context_init_mode != "none":
        log.warning(
            "spark context initialization %r is not implemented; no Spark context",
            settings.spark_context_init_mode,
        )
    exits = ExitState()
    try:
        app = _make_app(settings)
        app.initialize([])
        ports = {name: int(getattr(app, f"{name}_port")) for name in PORT_NAMES}
        log.info(
            "kernel listening on %s: %s",
            settings.ip,
            " ".join(f"{n}={p}" for n, p in ports.items()),
        )
        if on_listening is not None:
            on_listening(ports)
            on_failure = None
        if settings.response_address is not None:
            ip = advertised_ip(settings.ip, lambda: socket.gethostbyname(socket.gethostname()))
            info = connection_info(settings, ports=ports, ip=ip, pid=os.getpid())
            send_connection_info(settings.response_address, info, log)
        tracker = IdleTracker()
        _install_hooks(app.kernel, tracker=tracker, exits=exits, log=log)
        _schedule_checks(app, settings=settings, tracker=tracker, exits=exits, log=log)
        app.start()
    except SystemExit as exc:  # traitlets' Application.exit(1) on bad configuration
        log.error("kernel failed to initialize (bad configuration, see above)")
        exits.record(ExitReason.CRASHED if exc.code else ExitReason.LOOP_STOPPED)
    except Exception:
        log.exception("kernel failed")
        exits.record(ExitReason.CRASHED)
    exits.record(ExitReason.LOOP_STOPPED)
    reason = exits.reason or ExitReason.CRASHED
    if on_failure is not None:
        on_failure(reason.value)
    if reason is ExitReason.RESTART_REQUEST and settings.restart_grace > 0:
        log.info(
            "kernel stopped for a restart; waiting up to %g s for the Pod to be replaced",
            settings.restart_grace,
        )
        threading.Event().wait(settings.restart_grace)  # SIGTERM (the Pod's deletion) ends it
    code = exit_code(reason)
    log.log(_level(reason), "kernel exiting: %s (exit code %d)", reason.value, code)
    return code


def _schedule_checks(
    app: Any,
    *,
    settings: LaunchSettings,
    tracker: IdleTracker,
    exits: ExitState,
    log: logging.Logger,
) -> None:
    """Once the IO loop runs, check idleness and the heartbeat thread periodically on it."""
    from tornado.ioloop import IOLoop, PeriodicCallback  # noqa: PLC0415 - see _make_app

    def check() -> None:
        reason = decide_exit(
            idle_timeout=settings.idle_timeout,
            idle_seconds=tracker.idle_seconds(),
            heartbeat_alive=app.heartbeat is None or app.heartbeat.is_alive(),
        )
        if reason is not None and exits.record(reason):
            log.log(_level(reason), "stopping the kernel: %s", reason.value)
            IOLoop.current().stop()

    def start() -> None:
        PeriodicCallback(check, check_interval(settings.idle_timeout) * 1000).start()

    IOLoop.current().add_callback(start)


# --------------------------------------------------------------------------- standby
@dataclass(frozen=True)
class StandbySettings:
    """A standby kernel: where it waits for its activation, and what it needs meanwhile."""

    ip: str
    port: int
    token: str = field(repr=False)
    kernel_class_name: str = DEFAULT_KERNEL_CLASS
    restart_grace: float = DEFAULT_RESTART_GRACE_SECONDS


def resolve_standby(args: argparse.Namespace, env: Mapping[str, str]) -> StandbySettings | None:
    """The standby settings when ``KERNEL_ACTIVATION_PORT`` is set, else None."""
    raw = env.get("KERNEL_ACTIVATION_PORT", "")
    if not raw.strip():
        return None
    port = parse_port("KERNEL_ACTIVATION_PORT", raw)
    if port == 0:
        raise ValueError("KERNEL_ACTIVATION_PORT: a standby kernel needs a fixed port")
    token = env.get("KERNEL_ACTIVATION_TOKEN", "")
    if not token:
        raise ValueError("KERNEL_ACTIVATION_PORT is set but KERNEL_ACTIVATION_TOKEN is not")
    return StandbySettings(
        ip=env.get("KERNEL_IP") or DEFAULT_IP,
        port=port,
        token=token,
        kernel_class_name=args.kernel_class_name or DEFAULT_KERNEL_CLASS,
        restart_grace=parse_restart_grace(env.get("KERNEL_RESTART_GRACE_SECONDS")),
    )


def parse_activation(body: bytes, standby: StandbySettings) -> LaunchSettings:
    """The kernel's settings from an activation request's JSON; ``ValueError`` if unusable."""
    try:
        data = json.loads(body)
    except ValueError:
        raise ValueError("the activation is not JSON") from None
    if not isinstance(data, dict):
        raise ValueError("the activation is not a JSON object")
    kernel_id, key = data.get("kernel_id"), data.get("key")
    if not isinstance(kernel_id, str) or not kernel_id or not isinstance(key, str) or not key:
        raise ValueError("the activation needs a kernel_id and a key")
    raw_ports = data.get("ports")
    if not isinstance(raw_ports, dict):
        raise ValueError("the activation needs the five ports")
    ports = {}
    for name in PORT_NAMES:
        value = raw_ports.get(name)
        if not isinstance(value, int) or not 1 <= value <= 65535:
            raise ValueError(f"the activation's {name} port is not in 1-65535")
        ports[name] = value
    idle = data.get("idle_timeout", 0)
    if not isinstance(idle, int | float) or isinstance(idle, bool) or not 0 <= idle < float("inf"):
        raise ValueError("the activation's idle_timeout is not a number of seconds >= 0")
    return LaunchSettings(
        kernel_id=kernel_id,
        key=key,
        ip=standby.ip,
        ports=ports,
        idle_timeout=float(idle),
        kernel_class_name=standby.kernel_class_name,
        restart_grace=standby.restart_grace,
    )


def authorized(header: str | None, token: str) -> bool:
    """Whether an ``Authorization`` header carries the token (compared in constant time)."""
    scheme, _, given = (header or "").partition(" ")
    return scheme == "Bearer" and hmac.compare_digest(given.encode(), token.encode())


def identity_of(settings: LaunchSettings) -> tuple[str, str]:
    """What makes two activations the same: the kernel id and a digest of the key."""
    return settings.kernel_id, hashlib.sha256(settings.key.encode()).hexdigest()


class Activation:
    """Hands the one activation from the HTTP thread to the main thread, and its outcome back.

    States (under ``_lock``): waiting (no request), starting (``_request`` set), then listening
    (``_ports`` set) or failed (``_failure`` set). Only the first identity is ever accepted.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._request: LaunchSettings | None = None  # guarded by _lock
        self._ports: Mapping[str, int] | None = None  # guarded by _lock
        self._failure: str | None = None  # guarded by _lock

    def offer(self, settings: LaunchSettings, timeout: float) -> tuple[int, dict[str, Any]]:
        """From the HTTP thread: an HTTP status and a JSON answer for this activation."""
        with self._lock:
            if self._request is None:
                self._request = settings
                self._changed.notify_all()
            elif identity_of(self._request) != identity_of(settings):
                return 409, {"error": "already activated for another kernel"}
            self._changed.wait_for(
                lambda: self._ports is not None or self._failure is not None, timeout
            )
            if self._ports is not None:
                return 200, {"ports": dict(self._ports)}
            if self._failure is not None:
                return 500, {"error": f"the kernel could not start: {self._failure}"}
            return 504, {"error": "the kernel is still starting"}

    def wait_request(self) -> LaunchSettings:
        """From the main thread: block until an activation arrives."""
        with self._lock:
            self._changed.wait_for(lambda: self._request is not None)
            assert self._request is not None
            return self._request

    def listening(self, ports: Mapping[str, int]) -> None:
        with self._lock:
            self._ports = dict(ports)
            self._changed.notify_all()

    def failed(self, message: str) -> None:
        with self._lock:
            self._failure = message
            self._changed.notify_all()

    @property
    def state(self) -> str:
        with self._lock:
            if self._ports is not None:
                return "active"
            if self._failure is not None:
                return "failed"
            return "standby" if self._request is None else "starting"


def _activation_handler(
    standby: StandbySettings, activation: Activation, log: logging.Logger
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "kernel-standby"

        def do_GET(self) -> None:
            self._answer(200, {"state": activation.state})

        def do_POST(self) -> None:
            if self.path != "/activate":
                self._answer(404, {"error": "not found"})
                return
            if not authorized(self.headers.get("Authorization"), standby.token):
                log.warning("refused an activation from %s: bad token", self.client_address[0])
                self._answer(401, {"error": "bad activation token"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            if not 0 < length <= MAX_ACTIVATION_BYTES:
                self._answer(400, {"error": "no activation body, or too long"})
                return
            try:
                settings = parse_activation(self.rfile.read(length), standby)
            except ValueError as err:
                self._answer(400, {"error": str(err)})
                return
            status, answer = activation.offer(settings, ACTIVATION_TIMEOUT_SECONDS)
            if status == 409:
                log.warning("refused a second activation for another kernel")
            self._answer(status, answer)

        def _answer(self, status: int, body: Mapping[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: refusals are logged by the handler, the rest is noise."""

    return Handler


# What a kernel's start imports besides the kernel app and class (measured with
# ``python -X importtime`` across an activation): the debugger alone is ~60 ms.
PRELOADED_MODULES = (
    "ipykernel.kernelapp",
    "IPython.core.interactiveshell",
    "ipykernel.debugger",
    "IPython.core.oinspect",
    "IPython.core.completerlib",
    "IPython.core.debugger",
    "tornado.platform.asyncio",
    "sqlite3",
    "pdb",
)


def preload(kernel_class_name: str) -> None:
    """Import what a kernel's start spends its time on, before any activation. Only the
    kernel app and class are required; the others are imported when they exist."""
    importlib.import_module("ipykernel.kernelapp")
    module, _, _ = kernel_class_name.rpartition(".")
    if module:
        importlib.import_module(module)
    for name in PRELOADED_MODULES:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    _launcher_app_class()


def run_standby(standby: StandbySettings, log: logging.Logger) -> int:
    """Preload, wait for the activation, then run the kernel it describes; the exit code."""
    started = time.monotonic()
    try:
        preload(standby.kernel_class_name)
    except ImportError as err:
        log.error("standby: cannot import the kernel: %s", err)
        return exit_code(ExitReason.CRASHED)
    activation = Activation()
    server = ThreadingHTTPServer(
        (standby.ip, standby.port), _activation_handler(standby, activation, log)
    )
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="activation", daemon=True)
    thread.start()
    log.info(
        "standby: modules loaded in %.2f s; waiting for an activation on %s:%d",
        time.monotonic() - started,
        standby.ip,
        standby.port,
    )
    settings = activation.wait_request()
    log.info("activated: starting the kernel")
    return run_kernel(
        settings, log, on_listening=activation.listening, on_failure=activation.failed
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Parse options (exit 2 on bad input), run the kernel, return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        standby = resolve_standby(args, os.environ)
        settings = None if standby is not None else resolve_settings(args, os.environ)
    except ValueError as err:
        parser.error(str(err))
    log = _open_log()
    if standby is not None:
        return run_standby(standby, log)
    assert settings is not None
    return run_kernel(settings, log)


if __name__ == "__main__":
    raise SystemExit(main())
