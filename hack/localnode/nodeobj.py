"""The ``Node`` object of the local node: registration and heartbeat.

Contract: :meth:`NodeAgent.register` creates the Node (or, if it exists, takes it over and
rewrites its labels and status); capacity and allocatable are generous (cpu 64, memory
256Gi, pods 10000), address ``InternalIP`` 127.0.0.1, condition ``Ready`` True
(``KubeletReady``) plus the three pressure conditions False. A heartbeat thread
(``localnode-heartbeat``) merge-patches ``nodes/status`` every ``interval`` seconds with a
fresh ``lastHeartbeatTime`` (``lastTransitionTime`` stays the registration time) and
re-registers the Node if someone deleted it. The Node stays when the node process exits.
"""

from __future__ import annotations

import logging
import platform
import threading
from typing import Any

from informers import ApiError, Conflict, NotFound, Resource, ResourceClient
from localnode.ipam import HOST_IP
from localnode.podstatus import now_rfc3339

log = logging.getLogger(__name__)

NODES = Resource("", "v1", "nodes", namespaced=False)
HEARTBEAT_SECONDS = 10.0
JOIN_TIMEOUT_SECONDS = 10.0
CAPACITY = {"cpu": "64", "memory": "256Gi", "pods": "10000", "ephemeral-storage": "1Ti"}
VERSION = "localnode/0.1"
_CONDITIONS = (
    ("Ready", "True", "KubeletReady", "localnode is posting ready status"),
    ("MemoryPressure", "False", "KubeletHasSufficientMemory", "no memory pressure"),
    ("DiskPressure", "False", "KubeletHasNoDiskPressure", "no disk pressure"),
    ("PIDPressure", "False", "KubeletHasSufficientPID", "sufficient PID available"),
)


class NodeAgent:
    """Registers the Node ``name`` and keeps its heartbeat; see the module docstring."""

    def __init__(
        self, nodes: ResourceClient, name: str, *, interval: float = HEARTBEAT_SECONDS
    ) -> None:
        self._nodes = nodes
        self.name = name
        self._interval = interval
        self._since = now_rfc3339()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="localnode-heartbeat")

    def register(self) -> None:
        """Create or take over the Node; raises :class:`ApiError` on failure."""
        body = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": self.name, "labels": self._labels()},
            "spec": {},
            "status": self._status(),
        }
        try:
            self._nodes.create(body)
            log.info("registered node %s", self.name)
        except Conflict as err:
            if not err.already_exists:
                raise
            self._nodes.patch(self.name, {"metadata": {"labels": self._labels()}})
            log.info("node %s exists: taking it over", self.name)
        self._heartbeat()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float = JOIN_TIMEOUT_SECONDS) -> None:
        if self._thread.ident is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._heartbeat()
            except NotFound:
                log.warning("node %s was deleted: registering it again", self.name)
                self._try_register()
            except ApiError as err:
                log.warning("heartbeat of node %s failed: %s", self.name, err)

    def _try_register(self) -> None:
        try:
            self.register()
        except ApiError as err:
            log.warning("registering node %s failed: %s", self.name, err)

    def _heartbeat(self) -> None:
        self._nodes.patch(self.name, {"status": self._status()}, subresource="status")

    def _labels(self) -> dict[str, str]:
        return node_labels(self.name)

    def _status(self) -> dict[str, Any]:
        now = now_rfc3339()
        return {
            "capacity": dict(CAPACITY),
            "allocatable": dict(CAPACITY),
            "conditions": [
                {
                    "type": kind,
                    "status": status,
                    "reason": reason,
                    "message": message,
                    "lastHeartbeatTime": now,
                    "lastTransitionTime": self._since,
                }
                for kind, status, reason, message in _CONDITIONS
            ],
            "addresses": [
                {"type": "InternalIP", "address": HOST_IP},
                {"type": "Hostname", "address": self.name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
            "nodeInfo": {
                "machineID": "",
                "systemUUID": "",
                "bootID": "",
                "kernelVersion": platform.release(),
                "osImage": platform.platform(),
                "containerRuntimeVersion": VERSION,
                "kubeletVersion": VERSION,
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": _arch(),
            },
        }


def node_labels(name: str) -> dict[str, str]:
    """The labels of the Node ``name`` (what a Pod's ``nodeSelector`` is matched against)."""
    return {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": _arch(),
        "node.kubernetes.io/instance-type": "localnode",
    }


def _arch() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)
