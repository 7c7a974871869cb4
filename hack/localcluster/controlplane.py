"""A real local Kubernetes control plane: etcd, kube-apiserver and kube-controller-manager.

Everything listens on 127.0.0.1 on ports picked free at start (and kept across restarts of a
component). Authentication is a static admin token; the kubeconfig written to
``<work_dir>/kubeconfig`` uses it together with the API server's self-signed CA.

The harness only signals processes it started (or recorded in ``state.json`` for a detached
cluster). It serves the test suite (in-process, one per pytest session), ``make cluster-up``
(detached, reused while it runs) and fault tests (restart, stop, pause, compact).
All methods run on the caller's thread; none is thread-safe.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import secrets
import shutil
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from localcluster.ports import free_ports
from localcluster.process import ManagedProcess

ETCD = "etcd"
APISERVER = "kube-apiserver"
CONTROLLER_MANAGER = "kube-controller-manager"
COMPONENTS = (ETCD, APISERVER, CONTROLLER_MANAGER)

START_TIMEOUT_SECONDS = 90.0
SERVICE_CIDR = "10.96.0.0/16"
UNCACHED_RESOURCE = "podtemplates"


class ControlPlaneError(RuntimeError):
    """A component failed to start or answer; the message carries its log tail."""


@dataclass(frozen=True)
class Ports:
    etcd_client: int
    etcd_peer: int
    apiserver: int
    controller_manager: int

    @classmethod
    def pick(cls) -> Ports:
        return cls(*free_ports(4))


class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager rooted in ``work_dir``."""

    def __init__(
        self,
        *,
        bin_dir: Path,
        work_dir: Path,
        ports: Ports | None = None,
        audit_policy: str | None = None,
    ) -> None:
        """``audit_policy`` (an audit ``Policy`` as YAML) turns on the API server's audit log
        (JSON lines in ``audit_log_path``), e.g. to see exactly which requests a client sent."""
        self.bin_dir = bin_dir
        self.work_dir = work_dir
        self.ports = ports or Ports.pick()
        self.audit_policy = audit_policy
        self.audit_log_path = work_dir / "audit.log"
        self.token_path = work_dir / "admin.token"
        self.kubeconfig_path = work_dir / "kubeconfig"
        self.state_path = work_dir / "state.json"
        self.cert_dir = work_dir / "apiserver-certs"
        self.ca_path = self.cert_dir / "apiserver.crt"
        self.server_url = f"https://127.0.0.1:{self.ports.apiserver}"
        self.etcd_url = f"http://127.0.0.1:{self.ports.etcd_client}"
        self.processes: dict[str, ManagedProcess] = {
            ETCD: self._process(ETCD, self._etcd_args()),
            APISERVER: self._process(APISERVER, self._apiserver_args()),
            CONTROLLER_MANAGER: self._process(CONTROLLER_MANAGER, self._kcm_args()),
        }

    # ----------------------------------------------------------------- lifecycle
    def start(self, *, before_controller_manager: Callable[[], object] | None = None) -> None:
        """Start all components and wait until each is ready.

        ``before_controller_manager`` runs once the API server is ready (e.g. to install CRDs,
        so that the garbage collector discovers them at its first sync).
        """
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._write_credentials()
        if self.audit_policy is not None:
            (self.work_dir / "audit-policy.yaml").write_text(self.audit_policy)
        try:
            self.start_etcd()
            self.start_apiserver()
            if before_controller_manager is not None:
                before_controller_manager()
            self.start_controller_manager()
        except BaseException:
            self.stop()
            raise
        self.save_state()

    def stop(self) -> None:
        """Stop every component this harness started, in reverse order."""
        for name in reversed(COMPONENTS):
            self.processes[name].stop()
        self.state_path.unlink(missing_ok=True)

    def start_etcd(self) -> None:
        self.processes[ETCD].start()
        self._wait_ready(ETCD, lambda: self._http_ok(f"{self.etcd_url}/health", b'"health":"true"'))

    def stop_etcd(self) -> None:
        self.processes[ETCD].stop()

    def start_apiserver(self) -> None:
        self.processes[APISERVER].start()
        self._wait_ready(APISERVER, lambda: self._http_ok(f"{self.server_url}/readyz", b"ok"))
        self._write_kubeconfig()

    def stop_apiserver(self) -> None:
        self.processes[APISERVER].stop()

    def restart_apiserver(self) -> None:
        """Stop and start kube-apiserver on the same port: every open watch ends at once."""
        self.stop_apiserver()
        self.start_apiserver()
        self.save_state()

    def start_controller_manager(self) -> None:
        self.processes[CONTROLLER_MANAGER].start()
        url = f"https://127.0.0.1:{self.ports.controller_manager}/healthz"
        self._wait_ready(CONTROLLER_MANAGER, lambda: self._http_ok(url, b"ok", verify=False))

    def pause(self, name: str) -> None:
        """SIGSTOP a component: connections stay open, nothing is answered."""
        self.processes[name].pause()

    def resume(self, name: str) -> None:
        self.processes[name].resume()

    def compact_etcd(self) -> int:
        """Compact etcd's history up to its current revision; return that revision.

        Done as kube-apiserver's own compactor does it: record the revision under
        ``compact_rev_key`` (which the API server watches, so its watch cache forgets the
        compacted history within its 15 s poll) and then compact.
        """
        reply = self._etcd_call("/v3/kv/range", {"key": _b64(b"/"), "limit": 1})
        revision = int(reply["header"]["revision"])
        self._etcd_call(
            "/v3/kv/put",
            {"key": _b64(b"compact_rev_key"), "value": _b64(str(revision).encode())},
        )
        self._etcd_call("/v3/kv/compaction", {"revision": revision, "physical": True})
        return revision

    def audit_events(self) -> list[dict[str, Any]]:
        """Every event of the audit log so far (needs ``audit_policy``), oldest first."""
        if not self.audit_log_path.exists():
            return []
        events = []
        with self.audit_log_path.open(encoding="utf-8") as log:
            for line in log:
                with contextlib.suppress(ValueError):
                    events.append(json.loads(line))
        return events

    def request_totals(self) -> dict[tuple[str, str, str], float]:
        """The API server's own ``apiserver_request_total``, summed by (verb,
        resource[/subresource], code): what every client of it has asked so far."""
        token = self.token_path.read_text().strip()
        request = urllib.request.Request(  # noqa: S310 - the local API server
            f"{self.server_url}/metrics", headers={"Authorization": f"Bearer {token}"}
        )
        context = ssl.create_default_context(cafile=str(self.ca_path))
        with urllib.request.urlopen(request, context=context, timeout=30) as resp:  # noqa: S310
            text = resp.read().decode()
        totals: dict[tuple[str, str, str], float] = {}
        for line in text.splitlines():
            if not line.startswith("apiserver_request_total{"):
                continue
            labels = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
            sub = f"/{labels['subresource']}" if labels.get("subresource") else ""
            key = (labels.get("verb", ""), labels.get("resource", "") + sub, labels.get("code", ""))
            totals[key] = totals.get(key, 0.0) + float(line.split()[-1])
        return totals

    def running(self) -> bool:
        return all(p.alive() for p in self.processes.values())

    def diagnostics(self, lines: int = 30) -> str:
        """The tail of every component's log, for failure reports."""
        parts = []
        for name, proc in self.processes.items():
            state = "running" if proc.alive() else f"not running (exit {proc.exit_code()})"
            parts.append(f"--- {name} ({state}), {proc.log_path}\n{proc.log_tail(lines)}")
        return "\n".join(parts)

    # ----------------------------------------------------------- detached use
    def save_state(self) -> None:
        state = {
            "bin_dir": str(self.bin_dir),
            "ports": asdict(self.ports),
            "pids": {name: proc.pid for name, proc in self.processes.items()},
        }
        self.state_path.write_text(json.dumps(state, indent=2))

    @classmethod
    def attach(cls, work_dir: Path) -> ControlPlane | None:
        """The detached control plane recorded in ``work_dir``, if its processes still run."""
        try:
            state = json.loads((work_dir / "state.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        ports = Ports(**state["ports"])
        plane = cls(bin_dir=Path(state["bin_dir"]), work_dir=work_dir, ports=ports)
        for name, pid in state["pids"].items():
            if pid is not None:
                plane.processes[name].adopt(int(pid))
        return plane

    def healthy(self) -> bool:
        return self.running() and self._http_ok(f"{self.server_url}/readyz", b"ok")

    # ------------------------------------------------------------- internals
    def _process(self, name: str, args: list[str]) -> ManagedProcess:
        return ManagedProcess(
            name, argv=[str(self.bin_dir / name), *args], log_path=self.work_dir / f"{name}.log"
        )

    def _etcd_args(self) -> list[str]:
        peer = f"http://127.0.0.1:{self.ports.etcd_peer}"
        client = f"http://127.0.0.1:{self.ports.etcd_client}"
        return [
            "--name=default",
            f"--data-dir={self.work_dir / 'etcd'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=default={peer}",
            "--unsafe-no-fsync",
            "--log-level=warn",
        ]

    def _apiserver_args(self) -> list[str]:
        sa_key = self.work_dir / "service-account.key"
        return [
            f"--etcd-servers={self.etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            "--endpoint-reconciler-type=none",
            f"--secure-port={self.ports.apiserver}",
            f"--cert-dir={self.cert_dir}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={sa_key}",
            f"--service-account-signing-key-file={sa_key}",
            "--authorization-mode=RBAC",
            f"--token-auth-file={self.work_dir / 'tokens.csv'}",
            "--allow-privileged=true",
            "--disable-admission-plugins=ServiceAccount",
            "--profiling=false",
            # PodTemplates bypass the watch cache, so watches on them go to etcd and see its
            # compaction (410 Gone) at once: tests use them to observe compaction.
            f"--watch-cache-sizes={UNCACHED_RESOURCE}#0",
            "--v=1",
            *self._audit_args(),
        ]

    def _audit_args(self) -> list[str]:
        if self.audit_policy is None:
            return []
        policy = self.work_dir / "audit-policy.yaml"
        return [
            f"--audit-policy-file={policy}",
            f"--audit-log-path={self.audit_log_path}",
            "--audit-log-format=json",
            "--audit-log-maxsize=0",  # no rotation: the test reads one file
            "--audit-log-mode=blocking",  # written before the answer: no event lags behind
        ]

    def _kcm_args(self) -> list[str]:
        kubeconfig = str(self.kubeconfig_path)
        return [
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--authentication-skip-lookup=true",
            "--controllers=garbagecollector,namespace",
            "--leader-elect=false",
            "--use-service-account-credentials=false",
            "--bind-address=127.0.0.1",
            f"--secure-port={self.ports.controller_manager}",
            "--v=1",
        ]

    def _write_credentials(self) -> None:
        if not self.token_path.exists():
            self.token_path.write_text(secrets.token_hex(24))
            self.token_path.chmod(0o600)
        token = self.token_path.read_text().strip()
        tokens = self.work_dir / "tokens.csv"
        tokens.write_text(f"{token},admin,admin,system:masters\n")
        tokens.chmod(0o600)
        sa_key = self.work_dir / "service-account.key"
        if not sa_key.exists():
            openssl = shutil.which("openssl")
            if openssl is None:
                raise ControlPlaneError("openssl is needed to make the service-account key")
            subprocess.run(
                [openssl, "genrsa", "-out", str(sa_key), "2048"],
                check=True,
                capture_output=True,
            )

    def _write_kubeconfig(self) -> None:
        token = self.token_path.read_text().strip()
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "local",
                    "cluster": {
                        "server": self.server_url,
                        "certificate-authority": str(self.ca_path),
                    },
                }
            ],
            "users": [{"name": "admin", "user": {"token": token}}],
            "contexts": [{"name": "local", "context": {"cluster": "local", "user": "admin"}}],
            "current-context": "local",
        }
        tmp = self.kubeconfig_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(config, indent=2))
        tmp.chmod(0o600)
        tmp.replace(self.kubeconfig_path)

    def _wait_ready(self, name: str, probe: Callable[[], bool]) -> None:
        proc = self.processes[name]
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if not proc.alive():
                raise ControlPlaneError(
                    f"{name} exited with {proc.exit_code()} during start-up:\n{proc.log_tail()}"
                )
            if probe():
                return
            time.sleep(0.2)  # readiness poll of a child process, bounded by the deadline
        raise ControlPlaneError(
            f"{name} not ready after {START_TIMEOUT_SECONDS:.0f} s:\n{proc.log_tail()}"
        )

    def _http_ok(self, url: str, expect: bytes, *, verify: bool = True) -> bool:
        request = urllib.request.Request(url)  # noqa: S310 - loopback URLs we built
        context: ssl.SSLContext | None = None
        if url.startswith("https://"):
            if verify and self.ca_path.exists():
                context = ssl.create_default_context(cafile=str(self.ca_path))
            else:
                context = ssl._create_unverified_context()  # noqa: S323 - loopback self-signed
            if self.token_path.exists():
                request.add_header("Authorization", f"Bearer {self.token_path.read_text().strip()}")
        try:
            with urllib.request.urlopen(request, timeout=2, context=context) as resp:  # noqa: S310
                return bool(resp.status == 200 and expect in resp.read())
        except (OSError, urllib.error.URLError, ssl.SSLError):
            return False

    def _etcd_call(self, path: str, body: dict[str, object]) -> dict[str, Any]:
        request = urllib.request.Request(  # noqa: S310 - loopback URL we built
            f"{self.etcd_url}{path}",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310
            result: dict[str, Any] = json.loads(resp.read())
        return result


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def default_bin_dir() -> Path:
    """Where hack/k8s/build.sh puts the binaries (building them if missing)."""
    script = Path(__file__).resolve().parents[1] / "k8s" / "build.sh"
    env = dict(os.environ)
    out = subprocess.run(
        ["bash", str(script)], check=True, stdout=subprocess.PIPE, text=True, env=env
    )
    return Path(out.stdout.strip().splitlines()[-1])
