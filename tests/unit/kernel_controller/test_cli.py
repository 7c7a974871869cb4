"""The command line and environment of kernel-controller: every flag, defaults, precedence,
and one stderr line plus exit code 2 for every kind of bad value."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from kernel_controller.cli import OPTIONS, HelpShown, UsageError, main, parse_settings
from kernel_controller.settings import (
    LogFormat,
    LogLevel,
    Settings,
    SettingsError,
    parse_duration,
    split_address,
)
from reconcilers.model import DEFAULT_PORTS, KernelPorts, KeyMode, ReconcileSettings

KUBECONFIG = "<kubeconfig>"  # replaced by the path of a real file in the test


@pytest.fixture
def namespace_file(tmp_path: Path) -> Path:
    """A service-account namespace file that does not exist (not running in a cluster)."""
    return tmp_path / "namespace"


@pytest.fixture
def kubeconfig(tmp_path: Path) -> str:
    path = tmp_path / "kubeconfig"
    path.write_text("apiVersion: v1\nkind: Config\n")
    return str(path)


def parse(argv: list[str], env: dict[str, str] | None = None, *, namespace_file: Path) -> Settings:
    return parse_settings(argv, env or {}, namespace_file=namespace_file)


# -- every flag, from argv and from env --------------------------------------------------


@dataclass(frozen=True)
class Case:
    flag: str
    argv: list[str]
    env_value: str
    field: str
    expected: Any


CASES = [
    Case("--metrics-addr", ["--metrics-addr", "127.0.0.1:9090"], "127.0.0.1:9090",
         "metrics_addr", "127.0.0.1:9090"),
    Case("--probe-addr", ["--probe-addr=0"], "0", "probe_addr", "0"),
    Case("--enable-leader-election", ["--enable-leader-election"], "yes",
         "enable_leader_election", True),
    Case("--leader-election-namespace", ["--leader-election-namespace", "jupyter-system"],
         "jupyter-system", "leader_election_namespace", "jupyter-system"),
    Case("--leader-election-id", ["--leader-election-id", "kc.jupyter.org"], "kc.jupyter.org",
         "leader_election_id", "kc.jupyter.org"),
    Case("--lease-duration", ["--lease-duration", "30s"], "30s", "lease_duration", 30.0),
    Case("--renew-deadline", ["--renew-deadline", "5"], "5", "renew_deadline", 5.0),
    Case("--retry-period", ["--retry-period", "1500ms"], "1500ms", "retry_period", 1.5),
    Case("--qps", ["--qps", "50.5"], "50.5", "qps", 50.5),
    Case("--burst", ["--burst", "100"], "100", "burst", 100),
    Case("--kubeconfig", ["--kubeconfig", KUBECONFIG], KUBECONFIG, "kubeconfig", KUBECONFIG),
    Case("--namespaces", ["--namespaces", "team-a, team-b,team-a,"], "team-a, team-b,team-a,",
         "namespaces", ("team-a", "team-b")),
    Case("--workers", ["--workers", "64"], "64", "workers", 64),
    Case("--cluster-domain", ["--cluster-domain", "example.org"], "example.org",
         "cluster_domain", "example.org"),
    Case("--connection-key", ["--connection-key", "secret"], "SECRET", "connection_key",
         KeyMode.SECRET),
    Case("--failed-kernel-ttl", ["--failed-kernel-ttl", "1h30m"], "1h30m",
         "failed_kernel_ttl", 5400.0),
    Case("--default-idle-timeout", ["--default-idle-timeout", "10m"], "600",
         "default_idle_timeout", 600),
    Case("--readiness-probe", ["--no-readiness-probe"], "0", "readiness_probe", False),
    Case("--reissue-pod-events", ["--no-reissue-pod-events"], "no", "reissue_pod_events",
         False),
    Case("--log-level", ["--log-level", "DEBUG"], "debug", "log_level", LogLevel.DEBUG),
    Case("--log-format", ["--log-format", "text"], "text", "log_format", LogFormat.TEXT),
    Case("--shutdown-timeout", ["--shutdown-timeout", "30s"], "30", "shutdown_timeout", 30.0),
]  # fmt: skip
CASE_IDS = [case.flag.removeprefix("--") for case in CASES]


def env_name(flag: str) -> str:
    return "KERNEL_CONTROLLER_" + flag.removeprefix("--").upper().replace("-", "_")


def resolve(value: Any, kubeconfig: str) -> Any:
    return kubeconfig if value == KUBECONFIG else value


def test_cases_cover_every_flag() -> None:
    assert sorted(case.flag for case in CASES) == sorted(option.flag for option in OPTIONS)
    assert {case.field for case in CASES} | {"kernel_ports"} == set(Settings.__dataclass_fields__)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_flag_from_argv(case: Case, namespace_file: Path, kubeconfig: str) -> None:
    argv = [resolve(arg, kubeconfig) for arg in case.argv]
    settings = parse(argv, namespace_file=namespace_file)
    assert getattr(settings, case.field) == resolve(case.expected, kubeconfig)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_flag_from_env(case: Case, namespace_file: Path, kubeconfig: str) -> None:
    env = {env_name(case.flag): resolve(case.env_value, kubeconfig)}
    settings = parse([], env, namespace_file=namespace_file)
    assert getattr(settings, case.field) == resolve(case.expected, kubeconfig)


@pytest.mark.parametrize(
    ("argv", "env", "field", "expected"),
    [
        (["--workers", "2"], {"KERNEL_CONTROLLER_WORKERS": "9"}, "workers", 2),
        (["--metrics-addr", ":1"], {"KERNEL_CONTROLLER_METRICS_ADDR": ":2"}, "metrics_addr", ":1"),
        (["--no-readiness-probe"], {"KERNEL_CONTROLLER_READINESS_PROBE": "true"},
         "readiness_probe", False),
        (["--reissue-pod-events"], {"KERNEL_CONTROLLER_REISSUE_POD_EVENTS": "false"},
         "reissue_pod_events", True),
        (["--no-enable-leader-election"], {"KERNEL_CONTROLLER_ENABLE_LEADER_ELECTION": "1"},
         "enable_leader_election", False),
        (["--namespaces", "a"], {"KERNEL_CONTROLLER_NAMESPACES": "b,c"}, "namespaces", ("a",)),
        # the env value is never parsed when the flag is given, even if it is invalid
        (["--workers", "3"], {"KERNEL_CONTROLLER_WORKERS": "many"}, "workers", 3),
    ],
    ids=["int", "address", "no-switch", "switch", "no-leader", "namespaces", "bad-env-ignored"],
)  # fmt: skip
def test_flag_beats_env(
    argv: list[str], env: dict[str, str], field: str, expected: Any, namespace_file: Path
) -> None:
    assert getattr(parse(argv, env, namespace_file=namespace_file), field) == expected


def test_defaults(namespace_file: Path) -> None:
    settings = parse([], namespace_file=namespace_file)
    assert settings == Settings(leader_election_namespace="default")
    assert settings.as_log_dict() == {
        "metrics_addr": ":8080",
        "probe_addr": ":8081",
        "enable_leader_election": False,
        "leader_election_namespace": "default",
        "leader_election_id": "kernel-controller",
        "lease_duration": 15.0,
        "renew_deadline": 10.0,
        "retry_period": 2.0,
        "qps": 0.0,
        "burst": 0,
        "kubeconfig": None,
        "namespaces": [],
        "workers": 4,
        "cluster_domain": "cluster.local",
        "connection_key": "kernel-id",
        "failed_kernel_ttl": 3600.0,
        "default_idle_timeout": 0,
        "readiness_probe": True,
        "reissue_pod_events": True,
        "log_level": "info",
        "log_format": "json",
        "shutdown_timeout": 10.0,
        "kernel_ports": {"shell": 52317, "iopub": 52318, "stdin": 52319, "hb": 52320,
                         "control": 52321},
    }  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "env", "throttle"),
    [
        ([], {}, None),
        (["--qps", "0"], {}, None),
        ([], {"KERNEL_CONTROLLER_QPS": "-1"}, None),
        (["--burst", "50"], {}, None),
        (["--qps", "50"], {}, (50.0, 50)),
        (["--qps", "2.5"], {}, (2.5, 3)),
        (["--qps", "0.2"], {}, (0.2, 1)),
        (["--qps", "50", "--burst", "80"], {}, (50.0, 80)),
        (["--qps", "50", "--burst", "-1"], {}, (50.0, 50)),
    ],
    ids=[
        "default-off",
        "zero-off",
        "negative-env-off",
        "burst-alone-off",
        "burst-defaults-to-qps",
        "burst-rounds-up",
        "burst-at-least-one",
        "both",
        "negative-burst-defaults",
    ],
)
def test_the_client_side_throttle_is_off_unless_qps_is_positive(
    argv: list[str],
    env: dict[str, str],
    throttle: tuple[float, int] | None,
    namespace_file: Path,
) -> None:
    assert parse(argv, env, namespace_file=namespace_file).throttle() == throttle


def test_empty_env_value_counts_as_unset(namespace_file: Path) -> None:
    env = {env_name(option.flag): "" for option in OPTIONS} | {"KERNEL_SHELL_PORT": " "}
    assert parse([], env, namespace_file=namespace_file) == parse([], namespace_file=namespace_file)


def test_unknown_kernel_controller_env_is_ignored(namespace_file: Path) -> None:
    env = {"KERNEL_CONTROLLER_SERVICE_HOST": "10.0.0.1", "KERNEL_CONTROLLER_PORT": "tcp://x:1"}
    assert parse([], env, namespace_file=namespace_file).workers == 4


def test_leader_election_namespace_defaults_to_the_pods_namespace(namespace_file: Path) -> None:
    namespace_file.write_text("jupyter-system\n")
    assert parse([], namespace_file=namespace_file).leader_election_namespace == "jupyter-system"
    settings = parse(["--leader-election-namespace", "other"], namespace_file=namespace_file)
    assert settings.leader_election_namespace == "other"


def test_kernel_ports_from_env(namespace_file: Path) -> None:
    env = {
        "KERNEL_SHELL_PORT": "6001",
        "KERNEL_IOPUB_PORT": "6002",
        "KERNEL_STDIN_PORT": "6003",
        "KERNEL_HB_PORT": "6004",
        "KERNEL_CONTROL_PORT": "6005",
    }
    settings = parse([], env, namespace_file=namespace_file)
    expected = {"shell": 6001, "iopub": 6002, "stdin": 6003, "hb": 6004, "control": 6005}
    assert settings.kernel_ports == KernelPorts(**expected)
    partial = parse([], {"KERNEL_HB_PORT": "7000"}, namespace_file=namespace_file)
    assert partial.kernel_ports.hb == 7000
    assert partial.kernel_ports.shell == DEFAULT_PORTS.shell


def test_reconcile_settings_and_leader_config(namespace_file: Path) -> None:
    argv = ["--connection-key", "secret", "--no-readiness-probe", "--failed-kernel-ttl", "0",
            "--default-idle-timeout", "1h", "--cluster-domain", "k8s.example",
            "--no-reissue-pod-events", "--leader-election-id", "lock",
            "--leader-election-namespace", "ns", "--lease-duration", "20s",
            "--renew-deadline", "12s", "--retry-period", "3s"]  # fmt: skip
    settings = parse(argv, {"KERNEL_SHELL_PORT": "6000"}, namespace_file=namespace_file)
    assert settings.reconcile_settings() == ReconcileSettings(
        default_ports=dataclasses.replace(DEFAULT_PORTS, **{"shell": 6000}),
        cluster_domain="k8s.example",
        key_mode=KeyMode.SECRET,
        readiness_probe=False,
        default_idle_timeout=3600,
        failed_kernel_ttl=0.0,
        reissue_pod_events=False,
    )
    config = settings.leader_config("pod-1")
    assert (config.lease_name, config.namespace, config.identity) == ("lock", "ns", "pod-1")
    assert (config.lease_duration, config.renew_deadline, config.retry_period) == (20, 12, 3)
    assert config.release_on_cancel is True


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("0", 0.0), ("90", 90.0), ("2.5", 2.5), ("90s", 90.0), ("15m", 900.0),
     ("1h30m", 5400.0), ("1.5h", 5400.0), ("500ms", 0.5), ("2m3.5s", 123.5), ("0s", 0.0),
     ("1h0m0s", 3600.0), (" 10s ", 10.0), ("-5s", -5.0)],
)  # fmt: skip
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "s", "1d", "h1", "1h-", "1 h", "abc", "inf", "nan", "1e3"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("address", "split"),
    [(":8080", ("", 8080)), ("127.0.0.1:9090", ("127.0.0.1", 9090)), ("[::1]:0", ("::1", 0)),
     ("localhost:65535", ("localhost", 65535)), ("0", None)],
)  # fmt: skip
def test_split_address(address: str, split: tuple[str, int] | None) -> None:
    assert split_address(address) == split


def test_settings_validate_themselves() -> None:
    with pytest.raises(SettingsError) as info:
        Settings(leader_election_namespace="default", workers=0)
    assert info.value.flag == "--workers"
    assert str(info.value) == (
        "invalid value for --workers (KERNEL_CONTROLLER_WORKERS): must be 1..64, got 0"
    )


# -- bad values: exit code 2 and exactly one line on stderr ------------------------------


@dataclass(frozen=True)
class Bad:
    id: str
    argv: list[str]
    names: str  # what the stderr line must contain
    env: dict[str, str] = field(default_factory=dict)


def flag_of(flag: str) -> str:
    return f"invalid value for {flag} ({env_name(flag)}): "


BAD = [
    Bad("non-integer", ["--workers", "four"], flag_of("--workers") + "'four' is not an integer"),
    Bad("non-integer-env", [], flag_of("--burst"), {"KERNEL_CONTROLLER_BURST": "3.5"}),
    Bad("non-number", ["--qps", "fast"], flag_of("--qps")),
    Bad("workers-too-many", ["--workers", "65"], flag_of("--workers") + "must be 1..64"),
    Bad("workers-zero", ["--workers=0"], flag_of("--workers")),
    Bad("qps-infinite", ["--qps", "9" * 400], flag_of("--qps")),
    Bad("bad-connection-key", ["--connection-key", "public"],
        flag_of("--connection-key") + "'public' is not one of kernel-id, secret"),
    Bad("bad-log-level", ["--log-level", "verbose"], flag_of("--log-level")),
    Bad("bad-log-format-env", [], flag_of("--log-format"), {"KERNEL_CONTROLLER_LOG_FORMAT": "xml"}),
    Bad("bad-duration", ["--failed-kernel-ttl", "1d"],
        flag_of("--failed-kernel-ttl") + "'1d' is not a duration"),
    Bad("negative-duration", ["--failed-kernel-ttl=-1s"],
        flag_of("--failed-kernel-ttl") + "must not be negative"),
    Bad("fractional-idle-timeout", ["--default-idle-timeout", "1.5s"],
        flag_of("--default-idle-timeout") + "'1.5s' is not a whole number of seconds"),
    Bad("bad-shutdown-timeout-env", [], flag_of("--shutdown-timeout"),
        {"KERNEL_CONTROLLER_SHUTDOWN_TIMEOUT": "soon"}),
    Bad("address-no-port", ["--metrics-addr", "8080"], flag_of("--metrics-addr")),
    Bad("address-port-range", ["--probe-addr", "localhost:99999"],
        flag_of("--probe-addr") + "port 99999"),
    Bad("address-bad-port", ["--metrics-addr", "host:http"], flag_of("--metrics-addr")),
    Bad("address-empty", ["--metrics-addr", ""], flag_of("--metrics-addr")),
    Bad("address-bad-host", ["--probe-addr", "a b:80"], flag_of("--probe-addr")),
    Bad("namespace-upper", ["--namespaces", "team-a,Team-B"],
        flag_of("--namespaces") + "'Team-B' is not a valid namespace name"),
    Bad("namespace-underscore-env", [], flag_of("--namespaces"),
        {"KERNEL_CONTROLLER_NAMESPACES": "a_b"}),
    Bad("namespace-too-long", ["--namespaces", "a" * 64], flag_of("--namespaces")),
    Bad("leader-namespace", ["--leader-election-namespace=-x"],
        flag_of("--leader-election-namespace")),
    Bad("leader-id", ["--leader-election-id", "Lock!"], flag_of("--leader-election-id")),
    Bad("cluster-domain", ["--cluster-domain", "cluster..local"], flag_of("--cluster-domain")),
    Bad("bad-bool-env", [], flag_of("--readiness-probe") + "'maybe' is not a boolean",
        {"KERNEL_CONTROLLER_READINESS_PROBE": "maybe"}),
    Bad("bad-bool-env-leader", [], flag_of("--enable-leader-election"),
        {"KERNEL_CONTROLLER_ENABLE_LEADER_ELECTION": "on"}),
    Bad("bad-port-env", [], "invalid value for KERNEL_SHELL_PORT: 'abc' is not an integer",
        {"KERNEL_SHELL_PORT": "abc"}),
    Bad("port-env-zero", [], "invalid value for KERNEL_HB_PORT: port 0 is not in 1..65535",
        {"KERNEL_HB_PORT": "0"}),
    Bad("port-env-range", [], "invalid value for KERNEL_CONTROL_PORT: port 70000",
        {"KERNEL_CONTROL_PORT": "70000"}),
    Bad("port-env-duplicate", [],
        "invalid value for KERNEL_IOPUB_PORT: port 52317 is also KERNEL_SHELL_PORT",
        {"KERNEL_IOPUB_PORT": "52317"}),
    Bad("lease-not-above-renew", ["--lease-duration", "10s"],
        flag_of("--lease-duration")
        + "--lease-duration (10s) must be greater than --renew-deadline (10s)"),
    Bad("renew-not-above-retry", ["--retry-period", "9s"],
        flag_of("--renew-deadline")
        + "--renew-deadline (10s) must be greater than 1.2 x --retry-period (10.8s)"),
    Bad("retry-zero-env", [], flag_of("--retry-period"), {"KERNEL_CONTROLLER_RETRY_PERIOD": "0"}),
    Bad("kubeconfig-missing", ["--kubeconfig", "/nonexistent/kubeconfig"],
        flag_of("--kubeconfig") + "'/nonexistent/kubeconfig' is not a file"),
    Bad("unknown-flag", ["--foo", "1"], "unrecognized arguments: --foo 1"),
    Bad("abbreviated-flag", ["--work", "4"], "unrecognized arguments: --work 4"),
    Bad("missing-value", ["--workers"], "argument --workers: expected one argument"),
    Bad("switch-with-value", ["--readiness-probe=false"], "--readiness-probe"),
]  # fmt: skip


@pytest.mark.parametrize("bad", BAD, ids=[bad.id for bad in BAD])
def test_bad_value_is_one_line_and_exit_2(
    bad: Bad, namespace_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(bad.argv, bad.env, namespace_file=namespace_file) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.endswith("\n")
    assert err.count("\n") == 1
    assert err.startswith("kernel-controller: ")
    assert bad.names in err


def test_parse_settings_raises_typed_errors(namespace_file: Path) -> None:
    with pytest.raises(SettingsError) as info:
        parse(["--workers", "x"], namespace_file=namespace_file)
    assert (info.value.flag, info.value.message) == ("--workers", "'x' is not an integer")
    with pytest.raises(UsageError, match="--nope"):
        parse(["--nope"], namespace_file=namespace_file)
    with pytest.raises(HelpShown):
        parse(["--help"], namespace_file=namespace_file)


def test_value_with_newline_stays_on_one_line(
    namespace_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--log-level", "info\nerror"], {}, namespace_file=namespace_file) == 2
    assert capsys.readouterr().err.count("\n") == 1


# -- success and --help ------------------------------------------------------------------


def test_help_mentions_every_flag_and_exits_0(
    namespace_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--help"], {}, namespace_file=namespace_file) == 0
    out, err = capsys.readouterr()
    assert err == ""
    for option in OPTIONS:
        assert option.flag in out
        assert env_name(option.flag) in out
    for _, port_env in KernelPorts.ENV:
        assert port_env in out
    for title in ("connection to the cluster", "kernels", "leader election", "observability"):
        assert f"{title}:" in out
    assert "--no-readiness-probe" in out
    assert "--no-reissue-pod-events" in out
