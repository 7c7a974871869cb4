"""The two images, built with podman from the Dockerfiles as shipped (``make image``, ``make
kernel-image``; the base image pulled, else made by ``hack/image/base-image.sh``) and run:

- the controller image as the Deployment runs it — user 65532, read-only root filesystem, all
  capabilities dropped, no privilege escalation, the Deployment's args — on the host network
  against the session's API server with a kubeconfig mounted read-only (the admin's, and the
  token of ``config/rbac``'s ServiceAccount): a Kernel gets its Pod, Service and status,
  ``/metrics`` and ``/readyz`` answer, SIGTERM stops it with exit code 0 within the grace
  period;
- the kernel image with a kernel id and the five ports on a loopback address: a
  ``jupyter_client`` client runs code on it and its idle timeout ends it with exit code 0;
- what the images hold: no compiler, no pip cache, no tests; their sizes are written to
  ``.bench/images.json`` and shown in the session's summary.

Skipped, with the reason, only where podman is not installed (``.ci/run`` installs it)."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploytest import REPO, deployment_args, manager_deployment
from eventually import eventually
from kernel_connect import run_code
from kerneltest import Clients, kernel_body
from localcluster import free_port

CONTROLLER_IMAGE = "localhost/kernel-controller:test"
KERNEL_IMAGE = "localhost/kernel-py:test"
BUILD_SECONDS = 900  # a cold build: the base image from Debian's packages, then pip
TIMEOUT = 60.0
REPORT = REPO / ".bench" / "images.json"

pytestmark = [
    pytest.mark.pypi,
    pytest.mark.skipif(
        shutil.which("podman") is None,
        reason="podman is not installed (apt-get install podman buildah runc mmdebstrap; "
        ".ci/run installs them)",
    ),
]


@dataclass(frozen=True)
class Built:
    tag: str
    seconds: float
    size_bytes: int


def run(argv: list[str], *, timeout: float, check: bool = True) -> str:
    """``argv``'s stdout; when ``check``, a failure raises with its stderr (for the build
    script, the tail of the build log)."""
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(argv)}: {done.returncode}\n{done.stderr}")
    return done.stdout


def podman(*args: str, timeout: float = 120, check: bool = True) -> str:
    return run(["podman", *args], timeout=timeout, check=check)


def logs(name: str) -> str:
    """The container's stdout and stderr, interleaved."""
    return subprocess.run(
        ["podman", "logs", name], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        timeout=60, check=False,
    ).stdout  # fmt: skip


def ulimits() -> list[str]:
    return run([str(REPO / "hack" / "image" / "ulimits.sh")], timeout=60).split()


def build(what: str, tag: str) -> Built:
    started = time.monotonic()
    run([str(REPO / "hack" / "image" / "build.sh"), what, tag], timeout=BUILD_SECONDS)
    size = int(podman("image", "inspect", "--format", "{{.Size}}", tag).strip())
    return Built(tag=tag, seconds=round(time.monotonic() - started, 1), size_bytes=size)


@pytest.fixture(scope="module")
def images() -> Iterator[dict[str, Built]]:
    built = {"controller": build("controller", CONTROLLER_IMAGE)}
    built["kernel"] = build("kernel", KERNEL_IMAGE)
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text(
        json.dumps(
            {
                name: {"tag": b.tag, "build_seconds": b.seconds, "size_mb": b.size_bytes // 10**6}
                for name, b in built.items()
            },
            indent=2,
        )
    )
    yield built


def self_contained(kubeconfig: str, into: Path) -> Path:
    """``kubeconfig`` with its CA inlined (the container sees no host path), readable by the
    container's user; mounted read-only."""
    config = yaml.safe_load(Path(kubeconfig).read_text())
    for entry in config["clusters"]:
        cluster = entry["cluster"]
        path = cluster.pop("certificate-authority", None)
        if path is not None:
            cluster["certificate-authority-data"] = base64.b64encode(
                Path(path).read_bytes()
            ).decode()
    into.write_text(yaml.safe_dump(config))
    into.chmod(0o644)
    return into


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - loopback
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, ""
    except OSError:
        return 0, ""


def security_of_the_deployment() -> list[str]:
    """podman options for the manager container's securityContext, checked against it."""
    pod = manager_deployment()["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    user = pod.get("securityContext", {}).get("runAsUser") or sc.get("runAsUser")
    assert user == 65532
    return [
        "--user=65532:65532",
        "--read-only",
        "--cap-drop=ALL",
        "--security-opt=no-new-privileges",
    ]


@pytest.mark.timeout(BUILD_SECONDS + 300)
@pytest.mark.parametrize("identity", ["admin", "service-account"])
def test_the_controller_image_serves_kernels_as_the_deployment_runs_it(  # noqa: PLR0917
    identity: str,
    images: dict[str, Built],
    install_rbac: Any,
    kubeconfig: str,
    clients: Clients,
    namespace: str,
    tmp_path: Path,
) -> None:
    source = kubeconfig if identity == "admin" else install_rbac(namespace)
    mounted = self_contained(source, tmp_path / "kubeconfig")
    metrics, probes = free_port(), free_port()
    name = f"kernel-controller-{namespace}-{identity}"
    grace = manager_deployment()["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    podman(
        "run", "--detach", f"--name={name}", "--network=host", *security_of_the_deployment(),
        *ulimits(), f"--volume={mounted}:/etc/kernel-controller/kubeconfig:ro",
        images["controller"].tag,
        "--kubeconfig=/etc/kernel-controller/kubeconfig", *deployment_args(namespace),
        f"--namespaces={namespace}", f"--metrics-addr=127.0.0.1:{metrics}",
        f"--probe-addr=127.0.0.1:{probes}",
    )  # fmt: skip
    try:
        eventually(
            lambda: http_get(f"http://127.0.0.1:{probes}/readyz")[0] == 200,
            timeout=TIMEOUT,
            message="/readyz never answered 200",
        )
        clients.kernels.create(kernel_body("boxed"))
        eventually(lambda: clients.get(clients.pods, "boxed"), timeout=TIMEOUT, message="no Pod")
        eventually(
            lambda: clients.get(clients.services, "boxed"), timeout=TIMEOUT, message="no Service"
        )
        status = eventually(
            lambda: (clients.get(clients.kernels, "boxed") or {}).get("status"),
            timeout=TIMEOUT,
            message="no status",
        )
        assert {c["type"] for c in status["conditions"]} >= {"Ready"}
        code, text = http_get(f"http://127.0.0.1:{metrics}/metrics")
        assert code == 200
        assert 'kernel_create_total{namespace="' + namespace + '"} 1.0' in text
        assert http_get(f"http://127.0.0.1:{probes}/healthz")[0] == 200

        started = time.monotonic()
        podman("stop", f"--time={grace}", name, timeout=grace + 30)  # SIGTERM, then SIGKILL
        stopped = time.monotonic() - started
        state = json.loads(podman("inspect", "--format", "{{json .State}}", name))
        assert state["ExitCode"] == 0, logs(name)
        assert stopped < grace
        output = logs(name)
        assert "Traceback" not in output
        assert "received SIGTERM: shutting down" in output, output[-2000:]
    finally:
        podman("rm", "--force", name, check=False)


def test_the_kernel_image_runs_a_kernel_that_answers_and_culls_itself(
    images: dict[str, Built],
) -> None:
    kernel_id = str(uuid.uuid4())
    ports = {name: free_port() for name in ("shell", "iopub", "stdin", "hb", "control")}
    ip = "127.0.0.1"
    name = f"kernel-{kernel_id[:8]}"
    env = [f"--env=KERNEL_{n.upper()}_PORT={p}" for n, p in ports.items()]
    podman(
        "run", "--detach", f"--name={name}", "--network=host", *ulimits(),
        f"--env=KERNEL_ID={kernel_id}", f"--env=KERNEL_IP={ip}", "--env=KERNEL_IDLE_TIMEOUT=4",
        *env, images["kernel"].tag,
    )  # fmt: skip
    try:
        info = {
            **{f"{n}_port": p for n, p in ports.items()},
            "ip": ip,
            "key": kernel_id,
            "transport": "tcp",
            "signature_scheme": "hmac-sha256",
        }
        assert run_code(info, "import os; print(os.getuid(), 6*7)", timeout=60) == "1000 42"

        def exited() -> dict[str, Any] | None:
            state: dict[str, Any] = json.loads(
                podman("inspect", "--format", "{{json .State}}", name)
            )
            return state if state["Status"] == "exited" else None

        state = eventually(exited, timeout=TIMEOUT, message="the idle kernel did not exit")
        assert state["ExitCode"] == 0, logs(name)
        assert "kernel exiting: idle timeout (exit code 0)" in logs(name)
    finally:
        podman("rm", "--force", name, check=False)


def test_the_images_hold_no_compiler_pip_cache_or_tests(images: dict[str, Built]) -> None:
    # Tests: ours (tests/, its helpers, conftest.py) and the packages' own test directories.
    ours = " -o ".join(f"-name {p.name}" for p in sorted((REPO / "tests").glob("*.py")))
    script = (
        "for c in gcc cc g++ clang; do command -v $c; done; "
        "ls -d /root/.cache/pip /opt/venv/bin/pip /src /tests 2>/dev/null; "
        # What the image adds to its base: /opt/venv (the base's own Python is Debian's or
        # the official image's, tests of its pip included).
        f"find /opt \\( -type d -name tests -o {ours} \\) -print 2>/dev/null; true"
    )
    found = podman(
        "run", "--rm", "--user=0", "--entrypoint=sh", *ulimits(), images["controller"].tag,
        "-c", script,
    )  # fmt: skip
    assert found.strip() == "", found
    assert images["controller"].size_bytes < 450 * 10**6
    assert images["kernel"].size_bytes < 450 * 10**6
