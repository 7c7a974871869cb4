"""The pure parts of ``kernel_launch/launch_ipykernel.py``: parsing, settings, idle decisions."""

from __future__ import annotations

import importlib.util
import json
import logging
import socket
import subprocess
import sys
import threading
from pathlib import Path
from types import ModuleType

import pytest

LAUNCHER_PATH = Path(__file__).resolve().parents[3] / "kernel_launch" / "launch_ipykernel.py"


def _load_launcher() -> ModuleType:
    """The script is mounted as a single file, not a package: load it by path."""
    spec = importlib.util.spec_from_file_location("launch_ipykernel", LAUNCHER_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


li = _load_launcher()


def test_importing_the_launcher_does_no_work() -> None:
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('li', {str(LAUNCHER_PATH)!r})\n"
        "module = importlib.util.module_from_spec(spec); sys.modules['li'] = module\n"
        "spec.loader.exec_module(module)\n"
        "loaded = {'ipykernel', 'zmq', 'tornado', 'IPython'} & set(sys.modules)\n"
        "assert not loaded, loaded\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def settings_from(argv: list[str], env: dict[str, str]) -> object:
    return li.resolve_settings(li.build_parser().parse_args(argv), env)


# -- parsing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "port"),
    [(None, 0), ("", 0), (" 52317 ", 52317), ("0", 0), ("65535", 65535)],
    ids=["none", "empty", "spaces", "zero", "max"],
)
def test_parse_port(raw: str | None, port: int) -> None:
    assert li.parse_port("KERNEL_SHELL_PORT", raw) == port


@pytest.mark.parametrize("raw", ["abc", "1.5", "-1", "65536"])
def test_parse_port_rejects(raw: str) -> None:
    with pytest.raises(ValueError, match="KERNEL_HB_PORT"):
        li.parse_port("KERNEL_HB_PORT", raw)


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [(None, 0.0), ("", 0.0), ("0", 0.0), ("1800", 1800.0), ("2.5", 2.5)],
    ids=["none", "empty", "zero", "int", "float"],
)
def test_parse_idle_timeout(raw: str | None, seconds: float) -> None:
    assert li.parse_idle_timeout(raw) == seconds


@pytest.mark.parametrize("raw", ["soon", "-1", "nan", "inf"])
def test_parse_idle_timeout_rejects(raw: str) -> None:
    with pytest.raises(ValueError, match="idle timeout"):
        li.parse_idle_timeout(raw)


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [(None, 10.0), ("", 10.0), ("0", 0.0), ("2.5", 2.5)],
    ids=["none", "empty", "zero", "float"],
)
def test_parse_restart_grace(raw: str | None, seconds: float) -> None:
    assert li.parse_restart_grace(raw) == seconds


@pytest.mark.parametrize("raw", ["later", "-1", "nan", "inf"])
def test_parse_restart_grace_rejects(raw: str) -> None:
    with pytest.raises(ValueError, match="KERNEL_RESTART_GRACE_SECONDS"):
        li.parse_restart_grace(raw)


@pytest.mark.parametrize(
    ("args", "restart"),
    [
        ((None, [b"id"], {"content": {"restart": True}}), True),
        ((None, [b"id"], {"content": {"restart": False}}), False),
        ((None, [b"id"], {"content": {}}), False),
        ((), False),
    ],
    ids=["restart", "shutdown", "no-flag", "no-args"],
)
def test_restart_requested(args: tuple[object, ...], restart: bool) -> None:
    assert li.restart_requested(args) is restart


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(None, None), ("0..0", None), ("40000..40100", (40000, 40100))],
    ids=["none", "any", "range"],
)
def test_parse_port_range(raw: str | None, expected: tuple[int, int] | None) -> None:
    assert li.parse_port_range(raw) == expected


@pytest.mark.parametrize("raw", ["40000", "5..4", "a..b"])
def test_parse_port_range_rejects(raw: str) -> None:
    with pytest.raises(ValueError, match="port range"):
        li.parse_port_range(raw)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(None, None), ("10.0.0.1:8877", ("10.0.0.1", 8877)), ("[::1]:9", ("::1", 9))],
    ids=["none", "ipv4", "ipv6"],
)
def test_parse_response_address(raw: str | None, expected: tuple[str, int] | None) -> None:
    assert li.parse_response_address(raw) == expected


@pytest.mark.parametrize("raw", ["host", ":80", "host:0", "host:x"])
def test_parse_response_address_rejects(raw: str) -> None:
    with pytest.raises(ValueError, match="response address"):
        li.parse_response_address(raw)


def test_parser_accepts_the_enterprise_gateway_spellings() -> None:
    args = li.build_parser().parse_args(
        [
            "--RemoteProcessProxy.kernel-id",
            "a",
            "--RemoteProcessProxy.response_address",
            "h:1",
            "--port_range",
            "0..0",
            "--RemoteProcessProxy.public-key",
            "pk",
            "--spark-context-initialization-mode",
            "none",
        ]
    )
    assert (args.kernel_id, args.response_address, args.port_range, args.public_key) == (
        "a",
        "h:1",
        "0..0",
        "pk",
    )


# -- settings --------------------------------------------------------------------------------

ENV = {
    "KERNEL_ID": "id-1",
    "KERNEL_SHELL_PORT": "52317",
    "KERNEL_IOPUB_PORT": "52318",
    "KERNEL_STDIN_PORT": "52319",
    "KERNEL_HB_PORT": "52320",
    "KERNEL_CONTROL_PORT": "52321",
}


def test_settings_from_the_environment() -> None:
    settings = settings_from([], {**ENV, "KERNEL_IDLE_TIMEOUT": "1800"})
    assert settings == li.LaunchSettings(
        kernel_id="id-1",
        key="id-1",
        ip=li.DEFAULT_IP,
        ports={"shell": 52317, "iopub": 52318, "stdin": 52319, "hb": 52320, "control": 52321},
        idle_timeout=1800.0,
    )
    assert settings.key_is_kernel_id


def test_options_override_the_environment() -> None:
    settings = settings_from(
        ["--kernel-id", "id-2", "--kernel-shell-port", "6000", "--kernel-idle-timeout", "0"],
        {**ENV, "KERNEL_IDLE_TIMEOUT": "60", "KERNEL_IP": "127.0.0.5"},
    )
    assert (settings.kernel_id, settings.ports["shell"], settings.ports["hb"]) == (
        "id-2",
        6000,
        52320,
    )
    assert (settings.idle_timeout, settings.ip) == (0.0, "127.0.0.5")


@pytest.mark.parametrize(
    ("env", "key"),
    [({"KERNEL_KEY": "secret"}, "secret"), ({"KERNEL_KEY": ""}, "id-1"), ({}, "id-1")],
    ids=["key", "empty-key", "no-key"],
)
def test_signing_key_is_kernel_key_else_kernel_id(env: dict[str, str], key: str) -> None:
    assert settings_from([], {**ENV, **env}).key == key


def test_a_key_without_a_kernel_id_is_enough() -> None:
    settings = settings_from([], {"KERNEL_KEY": "secret"})
    assert (settings.kernel_id, settings.key, settings.ports["shell"]) == ("", "secret", 0)


def test_no_kernel_id_and_no_key_is_an_error() -> None:
    with pytest.raises(ValueError, match="KERNEL_ID"):
        settings_from([], {})


def test_unknown_spark_mode_is_an_error() -> None:
    with pytest.raises(ValueError, match="spark"):
        settings_from(["--spark-context-initialization-mode", "eventually"], ENV)


def test_the_key_is_not_in_the_settings_repr() -> None:
    settings = settings_from([], {**ENV, "KERNEL_KEY": "s3cr3t"})
    assert "s3cr3t" not in repr(settings)


def test_main_rejects_bad_environment_with_exit_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KERNEL_ID", "id-1")
    monkeypatch.setenv("KERNEL_STDIN_PORT", "lots")
    with pytest.raises(SystemExit) as exited:
        li.main([])
    assert exited.value.code == 2


# -- connection info -------------------------------------------------------------------------

PORTS = {"shell": 1, "iopub": 2, "stdin": 3, "hb": 4, "control": 5}


def test_connection_info_in_the_annotation_order_with_the_key() -> None:
    settings = settings_from([], {**ENV, "KERNEL_KEY": "k"})
    info = li.connection_info(settings, ports=PORTS, ip="10.1.2.3", pid=42)
    assert list(info) == [
        "shell_port",
        "stdin_port",
        "iopub_port",
        "control_port",
        "hb_port",
        "ip",
        "key",
        "transport",
        "signature_scheme",
        "kernel_name",
        "pid",
    ]
    assert (info["stdin_port"], info["key"], info["signature_scheme"]) == (3, "k", "hmac-sha256")


def test_connection_info_leaves_the_key_out_when_a_public_key_is_given() -> None:
    settings = settings_from(["--public-key", "pk"], {**ENV, "KERNEL_KEY": "k"})
    assert "key" not in li.connection_info(settings, ports=PORTS, ip="h", pid=1)


@pytest.mark.parametrize(
    ("bind_ip", "expected"),
    [("127.0.0.5", "127.0.0.5"), (li.DEFAULT_IP, "10.1.2.3")],
    ids=["specific", "wildcard"],
)
def test_advertised_ip(bind_ip: str, expected: str) -> None:
    assert li.advertised_ip(bind_ip, lambda: "10.1.2.3") == expected


def test_advertised_ip_falls_back_to_the_bind_ip() -> None:
    def unresolvable() -> str:
        raise OSError("no name")

    assert li.advertised_ip(li.DEFAULT_IP, unresolvable) == li.DEFAULT_IP


def quiet_logger() -> logging.Logger:
    log = logging.getLogger("test_helpers.launcher")
    log.propagate = True
    return log


def test_send_connection_info(caplog: pytest.LogCaptureFixture) -> None:
    info = li.connection_info(settings_from([], ENV), ports=PORTS, ip="h", pid=1)
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.settimeout(5)
        address = server.getsockname()
        with caplog.at_level(logging.INFO):
            assert li.send_connection_info(address, info, quiet_logger())
        conn, _ = server.accept()
        with conn:
            conn.settimeout(5)
            received = json.loads(b"".join(iter(lambda: conn.recv(4096), b"")))
    assert received == info
    assert "id-1" not in caplog.text  # the key (here the kernel id) is never logged


def test_send_connection_info_failure_is_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        address = closed.getsockname()  # bound, not listening: connection refused
        info = li.connection_info(settings_from([], ENV), ports=PORTS, ip="h", pid=1)
        assert not li.send_connection_info(address, info, quiet_logger())
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert "id-1" not in caplog.text


# -- idle culling ----------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_idle_is_counted_from_start_when_nothing_ran() -> None:
    clock = FakeClock()
    tracker = li.IdleTracker(clock)
    clock.now += 5
    assert tracker.idle_seconds() == 5


def test_idle_is_zero_during_an_execution_and_counted_from_its_end() -> None:
    clock = FakeClock()
    tracker = li.IdleTracker(clock)
    tracker.execution_started()
    clock.now += 1000
    assert tracker.idle_seconds() == 0
    tracker.execution_finished()
    clock.now += 3
    assert tracker.idle_seconds() == 3


def test_overlapping_executions_keep_the_kernel_busy() -> None:
    clock = FakeClock()
    tracker = li.IdleTracker(clock)
    tracker.execution_started()
    tracker.execution_started()
    tracker.execution_finished()
    clock.now += 10
    assert tracker.idle_seconds() == 0
    tracker.execution_finished()
    clock.now += 1
    assert tracker.idle_seconds() == 1


@pytest.mark.parametrize(
    ("timeout", "idle", "heartbeat", "reason"),
    [
        (0, 10_000, True, None),
        (30, 29.9, True, None),
        (30, 30, True, "IDLE"),
        (0, 0, False, "HEARTBEAT_DIED"),
        (30, 31, False, "HEARTBEAT_DIED"),
    ],
    ids=["no-timeout", "not-yet", "idle", "heartbeat-dead", "heartbeat-first"],
)
def test_decide_exit(timeout: float, idle: float, heartbeat: bool, reason: str | None) -> None:
    decided = li.decide_exit(idle_timeout=timeout, idle_seconds=idle, heartbeat_alive=heartbeat)
    assert decided == (None if reason is None else li.ExitReason[reason])


@pytest.mark.parametrize(
    ("timeout", "interval"),
    [(0, 1.0), (0.5, 0.1), (2, 0.2), (1800, 5.0)],
    ids=["none", "tiny", "short", "long"],
)
def test_check_interval(timeout: float, interval: float) -> None:
    assert li.check_interval(timeout) == interval


def test_exit_codes() -> None:
    codes = {reason.name: li.exit_code(reason) for reason in li.ExitReason}
    assert codes == {
        "IDLE": 0,
        "SHUTDOWN_REQUEST": 0,
        "RESTART_REQUEST": 0,
        "LOOP_STOPPED": 0,
        "HEARTBEAT_DIED": 1,
        "CRASHED": 1,
    }


def test_first_exit_reason_wins() -> None:
    exits = li.ExitState()
    assert exits.reason is None
    assert exits.record(li.ExitReason.IDLE)
    assert not exits.record(li.ExitReason.CRASHED)
    assert exits.reason is li.ExitReason.IDLE


STANDBY = li.StandbySettings(ip="127.0.0.9", port=52400, token="t0ken")
GOOD = {
    "kernel_id": "k-1",
    "key": "s3cret",
    "ports": {"shell": 1, "iopub": 2, "stdin": 3, "hb": 4, "control": 5},
    "idle_timeout": 60,
}


def test_parse_activation() -> None:
    settings = li.parse_activation(json.dumps(GOOD).encode(), STANDBY)

    assert (settings.kernel_id, settings.key, settings.ip) == ("k-1", "s3cret", "127.0.0.9")
    assert settings.ports == GOOD["ports"]
    assert settings.idle_timeout == 60.0
    assert "s3cret" not in repr(settings)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "not JSON"),
        (b"[]", "not a JSON object"),
        (json.dumps({**GOOD, "key": ""}).encode(), "a kernel_id and a key"),
        (json.dumps({**GOOD, "ports": {"shell": 1}}).encode(), "iopub port"),
        (json.dumps({**GOOD, "idle_timeout": -1}).encode(), "idle_timeout"),
    ],
    ids=["not-json", "not-object", "no-key", "missing-port", "negative-idle"],
)
def test_parse_activation_rejects(body: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        li.parse_activation(body, STANDBY)


@pytest.mark.parametrize(
    ("header", "ok"),
    [("Bearer t0ken", True), ("Bearer t0ke", False), ("Basic t0ken", False), (None, False)],
    ids=["right", "wrong", "other-scheme", "absent"],
)
def test_authorized(header: str | None, ok: bool) -> None:
    assert li.authorized(header, "t0ken") is ok


def test_activation_accepts_one_identity_only() -> None:
    activation = li.Activation()
    first = li.parse_activation(json.dumps(GOOD).encode(), STANDBY)
    other = li.parse_activation(json.dumps({**GOOD, "kernel_id": "k-2"}).encode(), STANDBY)
    answers: list[tuple[int, dict[str, object]]] = []
    waiter = threading.Thread(target=lambda: answers.append(activation.offer(first, 5.0)))
    waiter.start()
    assert activation.wait_request() == first
    assert activation.offer(other, 0.1)[0] == 409
    activation.listening(first.ports)
    waiter.join(5.0)

    assert answers == [(200, {"ports": dict(first.ports)})]
    assert activation.offer(first, 0.1) == (200, {"ports": dict(first.ports)})
    assert activation.state == "active"
