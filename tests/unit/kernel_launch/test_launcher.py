"""``bootstrap-kernel.sh`` + ``launch_ipykernel.py`` as a process, driven by a real Jupyter client.

Every kernel is started through the shell script with ``KERNEL_IP=127.0.0.1``, its output goes
to files (no reader threads), and the fixture kills whatever is still running at the end.
Ports are 0 (the kernel binds and logs them) unless a test is about the port env vars.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from jupyter_client import BlockingKernelClient

from eventually import eventually
from localcluster import free_port

KERNEL_LAUNCH = Path(__file__).resolve().parents[3] / "kernel_launch"
BOOTSTRAP = KERNEL_LAUNCH / "bootstrap-kernel.sh"
PORT_NAMES = ("shell", "iopub", "stdin", "hb", "control")
LISTENING = re.compile(
    r"kernel listening on (?P<ip>\S+): shell=(?P<shell>\d+) iopub=(?P<iopub>\d+) "
    r"stdin=(?P<stdin>\d+) hb=(?P<hb>\d+) control=(?P<control>\d+)"
)
START_TIMEOUT = 20.0
REPLY_TIMEOUT = 15.0
EXIT_TIMEOUT = 10.0


class KernelProcess:
    """One ``bootstrap-kernel.sh`` process with its output in ``stdout``/``stderr`` files."""

    def __init__(self, env: Mapping[str, str], workdir: Path, args: tuple[str, ...] = ()) -> None:
        self.env = dict(env)
        self.stdout_path = workdir / "stdout.log"
        self.stderr_path = workdir / "stderr.log"
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.proc = subprocess.Popen(
                [str(BOOTSTRAP), *args], env=self.env, stdout=out, stderr=err, cwd=workdir
            )

    @property
    def key(self) -> str:
        return self.env.get("KERNEL_KEY") or self.env["KERNEL_ID"]

    def output(self) -> str:
        return self.stdout_path.read_text() + self.stderr_path.read_text()

    def ports(self) -> dict[str, int]:
        """The ports from the launcher's "kernel listening" log line (waits for it)."""

        def listening() -> re.Match[str] | None:
            assert self.proc.poll() is None, f"kernel exited early:\n{self.output()}"
            return LISTENING.search(self.stderr_path.read_text())

        match = eventually(listening, timeout=START_TIMEOUT, message="kernel not listening")
        return {name: int(match[name]) for name in PORT_NAMES}

    def wait(self, timeout: float = EXIT_TIMEOUT) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"kernel still running:\n{self.output()}") from None

    @contextmanager
    def client(self, key: str | None = None) -> Iterator[BlockingKernelClient]:
        """A client on this kernel's ports, signing with ``key`` (default: the kernel's)."""
        ports = self.ports()
        kc = BlockingKernelClient()
        kc.load_connection_info(
            {
                "ip": "127.0.0.1",
                "transport": "tcp",
                "signature_scheme": "hmac-sha256",
                "key": (key or self.key).encode(),
                **{f"{name}_port": port for name, port in ports.items()},
            }
        )
        kc.start_channels(hb=False)
        try:
            yield kc
        finally:
            kc.stop_channels()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(EXIT_TIMEOUT)


@pytest.fixture
def base_env(tmp_path: Path) -> dict[str, str]:
    """A clean environment: no inherited KERNEL_*/JPY_*/EG_* values, IPython state in tmp."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KERNEL_", "JPY_", "EG_"))}
    env.update(
        KERNEL_PYTHON=sys.executable,
        KERNEL_IP="127.0.0.1",
        KERNEL_ID=str(uuid.uuid4()),
        KERNEL_LAUNCHERS_DIR=str(tmp_path / "no-launchers"),  # use the script's neighbour
        IPYTHONDIR=str(tmp_path / "ipython"),
        JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
        JUPYTER_PLATFORM_DIRS="1",
    )
    return env


@pytest.fixture
def start_kernel(tmp_path: Path, base_env: dict[str, str]) -> Iterator[Any]:
    """``start_kernel(**env, args=())`` -> a running ``KernelProcess``; all killed at the end."""
    started: list[KernelProcess] = []

    def start(args: tuple[str, ...] = (), **env: str) -> KernelProcess:
        workdir = tmp_path / f"kernel-{len(started)}"
        workdir.mkdir()
        kernel = KernelProcess({**base_env, **env}, workdir, args)
        started.append(kernel)
        return kernel

    yield start
    for kernel in started:
        kernel.stop()


def execute(kc: BlockingKernelClient, code: str) -> dict[str, Any]:
    """Run ``code``; the execute_reply content, with ``result`` = the text/plain result."""
    results: list[str] = []

    def on_iopub(msg: dict[str, Any]) -> None:
        if msg["msg_type"] == "execute_result":
            results.append(msg["content"]["data"]["text/plain"])

    reply = kc.execute_interactive(code, timeout=REPLY_TIMEOUT, output_hook=on_iopub)
    content: dict[str, Any] = reply["content"]
    return {**content, "result": results[0] if results else None}


def test_env_ports_execute_and_shutdown(start_kernel: Any) -> None:
    ports = {name: free_port() for name in PORT_NAMES}
    env = {f"KERNEL_{name.upper()}_PORT": str(port) for name, port in ports.items()}
    kernel = start_kernel(KERNEL_KEY=f"key-{uuid.uuid4()}", **env)

    assert kernel.ports() == ports
    with kernel.client() as kc:
        reply = execute(kc, "1+1")
        assert (reply["status"], reply["result"]) == ("ok", "2")
        kc.shutdown()
        assert kernel.wait() == 0

    output = kernel.output()
    assert kernel.env["KERNEL_KEY"] not in output
    assert kernel.env["KERNEL_ID"] in output  # the id is logged when it is not the key
    assert "shutdown_request" in output


def test_shutdown_request_exits_zero_and_kernel_id_key_is_never_printed(
    start_kernel: Any,
) -> None:
    kernel = start_kernel()  # no KERNEL_KEY: the kernel id signs, so it must not be printed
    with kernel.client() as kc:
        reply = execute(kc, "print('hello'); 40 + 2")
        assert reply["result"] == "42"
        kc.shutdown()
        assert kernel.wait() == 0
    assert kernel.env["KERNEL_ID"] not in kernel.output()


def test_a_restart_request_waits_for_the_pod_to_be_replaced(start_kernel: Any) -> None:
    kernel = start_kernel(KERNEL_RESTART_GRACE_SECONDS="60")
    with kernel.client() as kc:
        kc.shutdown(restart=True)
        eventually(
            lambda: "waiting up to 60 s for the Pod to be replaced" in kernel.output(),
            timeout=REPLY_TIMEOUT,
            message="no restart wait",
        )
    assert kernel.proc.poll() is None  # stopped, but not exited: no culling yet
    kernel.proc.send_signal(signal.SIGTERM)  # the Pod's deletion
    assert kernel.wait() == -signal.SIGTERM


def test_a_restart_request_nobody_acts_on_exits_zero_after_the_grace(start_kernel: Any) -> None:
    kernel = start_kernel(KERNEL_RESTART_GRACE_SECONDS="0.5")
    with kernel.client() as kc:
        kc.shutdown(restart=True)
        assert kernel.wait() == 0
    assert "shutdown_request with restart from a client" in kernel.output()


def test_exit_in_the_kernel_exits_zero(start_kernel: Any) -> None:
    kernel = start_kernel()
    with kernel.client() as kc:
        kc.execute("exit()")
        assert kernel.wait() == 0
    assert "event loop stopped" in kernel.output()


def test_messages_signed_with_another_key_are_ignored(start_kernel: Any) -> None:
    kernel = start_kernel(KERNEL_KEY=f"key-{uuid.uuid4()}")
    with kernel.client(key=kernel.env["KERNEL_ID"]) as kc:
        kc.kernel_info()
        with pytest.raises(queue.Empty):
            kc.get_shell_msg(timeout=2)
    with kernel.client() as kc:
        assert kc.kernel_info() and kc.get_shell_msg(timeout=REPLY_TIMEOUT)
    assert kernel.proc.poll() is None


def test_idle_timeout_counts_from_start(start_kernel: Any) -> None:
    kernel = start_kernel(KERNEL_IDLE_TIMEOUT="1")
    kernel.ports()
    listening = time.monotonic()
    assert kernel.wait() == 0
    assert time.monotonic() - listening >= 0.5
    assert "idle timeout" in kernel.output()


@pytest.mark.parametrize(
    "code",
    ["import time; time.sleep(4)", "import asyncio; await asyncio.sleep(4)"],
    ids=["blocking", "async"],
)
def test_idle_timeout_counts_from_the_end_of_an_execution(start_kernel: Any, code: str) -> None:
    kernel = start_kernel(KERNEL_IDLE_TIMEOUT="2")
    with kernel.client() as kc:
        reply = execute(kc, code)  # sent at once: the kernel has been idle < 2 s
        finished = time.monotonic()
        assert reply["status"] == "ok"
        assert kernel.proc.poll() is None, "culled during or right after a 4 s execution"
        assert kernel.wait(timeout=2 + EXIT_TIMEOUT) == 0
    assert time.monotonic() - finished >= 1.5  # 2 s from the end of the execution
    assert "stopping the kernel: idle timeout" in kernel.output()


def test_exit_code_of_the_kernel_process_is_propagated(start_kernel: Any) -> None:
    kernel = start_kernel()
    with kernel.client() as kc:
        kc.execute("import os; os._exit(3)")
        assert kernel.wait() == 3


@pytest.mark.parametrize("busy", ["shell", "hb"])
def test_port_in_use_is_a_failure(start_kernel: Any, busy: str) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        kernel = start_kernel(**{f"KERNEL_{busy.upper()}_PORT": str(port)})
        assert kernel.wait() == 1
    assert "exit code 1" in kernel.output()


def test_sigterm_is_not_a_clean_exit(start_kernel: Any) -> None:
    kernel = start_kernel()
    kernel.ports()
    kernel.proc.send_signal(signal.SIGTERM)  # exec: the signal reaches the kernel itself
    assert kernel.wait() == -signal.SIGTERM


def test_response_address_gets_the_connection_info(start_kernel: Any) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.settimeout(START_TIMEOUT)
        address = f"127.0.0.1:{server.getsockname()[1]}"
        kernel = start_kernel(KERNEL_KEY="k3y-for-the-handshake", RESPONSE_ADDRESS=address)
        conn, _ = server.accept()
        with conn:
            conn.settimeout(REPLY_TIMEOUT)
            payload = b"".join(iter(lambda: conn.recv(4096), b""))
    info = json.loads(payload)
    assert {name: info[f"{name}_port"] for name in PORT_NAMES} == kernel.ports()
    assert info["key"] == "k3y-for-the-handshake"
    assert (info["ip"], info["transport"], info["signature_scheme"]) == (
        "127.0.0.1",
        "tcp",
        "hmac-sha256",
    )
    assert "k3y-for-the-handshake" not in kernel.output()


def test_unreachable_response_address_is_only_a_warning(start_kernel: Any) -> None:
    kernel = start_kernel(
        KERNEL_KEY="another-secret", args=("--response-address", f"127.0.0.1:{free_port()}")
    )
    with kernel.client() as kc:
        assert execute(kc, "6 * 7")["result"] == "42"
    output = kernel.output()
    assert "could not send the connection info" in output
    assert "another-secret" not in output


def test_unknown_kernel_class_is_a_failure(start_kernel: Any) -> None:
    kernel = start_kernel(KERNEL_CLASS_NAME="no.such.Kernel")
    assert kernel.wait() == 1
    assert "kernel exiting: the kernel failed (exit code 1)" in kernel.output()


def test_bad_environment_exits_2(start_kernel: Any) -> None:
    kernel = start_kernel(KERNEL_SHELL_PORT="not-a-port")
    assert kernel.wait() == 2
    assert "KERNEL_SHELL_PORT" in kernel.output()


def test_script_passes_options_and_propagates_the_exit_code(
    start_kernel: Any, tmp_path: Path
) -> None:
    fake = tmp_path / "fake_launcher.py"
    fake.write_text(
        "import json, sys\n"
        f"open({str(tmp_path / 'argv.json')!r}, 'w').write(json.dumps(sys.argv[1:]))\n"
        "sys.exit(7)\n"
    )
    kernel = start_kernel(
        ("--extra", "an arg with spaces"),
        KERNEL_LAUNCHER=str(fake),
        EG_PORT_RANGE="40000..40100",
        RESPONSE_ADDRESS="127.0.0.1:9",
        KERNEL_CLASS_NAME="ipykernel.ipkernel.IPythonKernel",
    )
    assert kernel.wait() == 7
    argv = json.loads((tmp_path / "argv.json").read_text())
    assert argv == [
        "--port-range",
        "40000..40100",
        "--response-address",
        "127.0.0.1:9",
        "--spark-context-initialization-mode",
        "none",
        "--kernel-class-name",
        "ipykernel.ipkernel.IPythonKernel",
        "--extra",
        "an arg with spaces",
    ]
    assert kernel.env["KERNEL_ID"] not in kernel.output()


@pytest.mark.parametrize(
    ("language", "message"),
    [("R", "R launcher"), ("scala", "Toree assembly"), ("cobol", "unrecognized KERNEL_LANGUAGE")],
)
def test_other_languages_fail_clearly_without_their_launcher(
    start_kernel: Any, language: str, message: str
) -> None:
    kernel = start_kernel(KERNEL_LANGUAGE=language)
    assert kernel.wait() == 1
    assert message in kernel.output()


def test_config_files_apply_but_never_override_the_launch_settings(
    start_kernel: Any, base_env: dict[str, str]
) -> None:
    # A user's ipython_kernel_config.py is honoured, except for what the launcher sets: the
    # ports and the key the controller published.
    profile = Path(base_env["IPYTHONDIR"]) / "profile_default"
    profile.mkdir(parents=True)
    (profile / "ipython_kernel_config.py").write_text(
        "c.IPKernelApp.exec_lines = ['from_config = 41']\n"
        f"c.IPKernelApp.shell_port = {free_port()}\n"
        "c.Session.key = b'from-the-config-file'\n"
    )
    ports = {name: free_port() for name in PORT_NAMES}
    env = {f"KERNEL_{name.upper()}_PORT": str(port) for name, port in ports.items()}
    kernel = start_kernel(KERNEL_KEY=f"key-{uuid.uuid4()}", **env)

    assert kernel.ports() == ports
    with kernel.client() as kc:  # signed with KERNEL_KEY
        assert execute(kc, "from_config + 1")["result"] == "42"


def test_the_kernel_starts_in_kernel_working_dir(start_kernel: Any, tmp_path: Path) -> None:
    workdir = tmp_path / "notebooks"
    workdir.mkdir()
    kernel = start_kernel(KERNEL_WORKING_DIR=str(workdir))
    with kernel.client() as kc:
        reply = execute(kc, "import os; os.getcwd()")
    assert reply["result"] == repr(str(workdir))


def test_a_working_dir_that_cannot_be_entered_fails_at_start(
    start_kernel: Any, tmp_path: Path
) -> None:
    kernel = start_kernel(KERNEL_WORKING_DIR=str(tmp_path / "missing"))
    assert kernel.wait() == 1
    assert "cannot enter KERNEL_WORKING_DIR" in kernel.output()


def activate(
    port: int, token: str, body: dict[str, Any], *, host: str = "127.0.0.1"
) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        f"http://{host}:{port}/activate",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as resp:  # noqa: S310
            return int(resp.status), json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return int(err.code), json.loads(err.read())


def test_a_standby_kernel_binds_nothing_until_activated_then_serves_its_identity(
    start_kernel: Any,
) -> None:
    port, token = free_port(), f"token-{uuid.uuid4()}"
    kernel = start_kernel(
        KERNEL_ACTIVATION_PORT=str(port), KERNEL_ACTIVATION_TOKEN=token, KERNEL_ID=""
    )
    eventually(
        lambda: "waiting for an activation" in kernel.output(),
        timeout=START_TIMEOUT,
        message="standby never ready",
    )
    ports = {name: free_port() for name in PORT_NAMES}
    identity = {
        "kernel_id": str(uuid.uuid4()),
        "key": f"key-{uuid.uuid4()}",
        "ports": ports,
        "idle_timeout": 0,
    }
    with socket.socket() as probe:  # no kernel port is bound in standby
        assert probe.connect_ex(("127.0.0.1", ports["shell"])) != 0

    assert activate(port, "wrong-token", identity)[0] == 401
    status, answer = activate(port, token, identity)
    assert (status, answer) == (200, {"ports": ports})
    assert activate(port, token, identity) == (200, {"ports": ports})  # a retry: same answer
    other = {**identity, "kernel_id": str(uuid.uuid4())}
    assert activate(port, token, other)[0] == 409  # never a second kernel

    kernel.env["KERNEL_KEY"] = identity["key"]
    with kernel.client() as kc:
        assert execute(kc, "1+1")["result"] == "2"
    output = kernel.output()
    assert identity["key"] not in output and token not in output
    assert "bad token" in output


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"KERNEL_ACTIVATION_PORT": "0", "KERNEL_ACTIVATION_TOKEN": "t"}, "fixed port"),
        ({"KERNEL_ACTIVATION_PORT": "52400"}, "KERNEL_ACTIVATION_TOKEN is not"),
    ],
    ids=["port-zero", "no-token"],
)
def test_a_standby_without_what_it_needs_is_a_usage_error(
    start_kernel: Any, env: dict[str, str], message: str
) -> None:
    kernel = start_kernel(**env)
    assert kernel.wait() == 2
    assert message in kernel.output()
