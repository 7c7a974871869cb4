"""One pass over one Pod key (``namespace/name``): the local node's kubelet logic.

:meth:`PodSyncer.sync` is called by a worker (never twice at once for a key) and returns the
delay after which it wants to run again (readiness polling), or None. It raises
:class:`RetryLater` or an :class:`informers.ApiError` for a rate-limited retry.

For a key it does, in order:

1. a record whose Pod is gone or was replaced (other uid): stop its process (SIGTERM, SIGKILL
   after the grace period; the reaper enqueues the key on exit), then free its IP;
2. no Pod bound here: bind the unbound Pod of that key (``pods/binding``) if there is one and
   it fits the node (:mod:`localnode.scheduling`); one that does not is marked
   ``Unschedulable`` as the scheduler marks it, and left unbound;
3. a Pod with a ``deletionTimestamp``: stop as in 1, then finish the deletion as a kubelet
   does (DELETE with ``gracePeriodSeconds: 0`` and a uid precondition);
4. a terminal Pod (Succeeded/Failed): nothing;
5. otherwise allocate an IP; an image the node cannot pull (:mod:`localnode.images`) is
   reported ``ErrImagePull``, then ``ImagePullBackOff`` on the retries, and never started;
   else start the process (or, with ``--no-processes``, pretend to), and
   write the status (see :mod:`localnode.podstatus`): Running; Ready once a TCP connect to
   the readiness probe's port on the Pod's IP succeeds (polled 0.1 s → 2 s apart, after the
   probe's ``initialDelaySeconds``; Ready then stays True until the process exits: there is
   no re-probing); Succeeded/Failed with the exit code once it exited.
   A Pod whose status says its container was started by an earlier node run, but which has
   no process now, is reported Failed (``ContainerStatusUnknown``, exit code 137).

A status is written (merge patch of ``pods/status``) only when it differs from the cached one
and from the last one written.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from informers import (
    Conflict,
    NotFound,
    RequestInfo,
    Resource,
    ResourceClient,
    object_key,
)
from localnode.images import pull_failure
from localnode.ipam import HOST_IP, AddressPool, PoolExhausted
from localnode.nodeobj import node_labels
from localnode.podspec import (
    EnvError,
    Pod,
    base_environment,
    container_env,
    container_started,
    decode_secret,
    deletion_requested,
    grace_seconds,
    is_terminal,
    meta,
    readiness_probe,
    ready_since,
    running_since,
    termination_message_policy,
    uid,
)
from localnode.podstatus import (
    Exit,
    Status,
    exit_reason,
    needs_write,
    now_rfc3339,
    pending_status,
    running_status,
    terminated_status,
    unschedulable_status,
)
from localnode.processes import KernelProcess, ProcessTable, log_tail
from localnode.scheduling import unschedulable
from localnode.settings import Settings

log = logging.getLogger(__name__)

PODS = Resource("", "v1", "pods")
SECRETS = Resource("", "v1", "secrets")
PROBE_TIMEOUT_SECONDS = 1.0
MAX_PROBE_INTERVAL_SECONDS = 2.0
LOST_MESSAGE = "The container could not be located when the pod was terminated"


class RetryLater(Exception):
    """The Pod cannot progress now (reported in its status); retry with backoff."""


@dataclass
class PodRecord:
    """What the node knows of one Pod; only the worker syncing its key touches it."""

    uid: str
    ip: str
    start_time: str
    grace: float
    restored: bool = False  # its container was started by an earlier node run
    started_at: str = ""
    started_mono: float = 0.0
    container_id: str = ""
    ready_since: str | None = None
    probe_attempts: int = 0
    pull_attempts: int = 0
    exit: Exit | None = None
    last_written: Status | None = None


class PodCache(Protocol):
    """Read access to the node's cached Pods (bound to it, or unbound)."""

    def get(self, key: str) -> Pod | None: ...

    def list(self) -> Sequence[Pod]: ...


class PodSyncer:
    """The per-key logic; see the module docstring."""

    def __init__(
        self,
        *,
        settings: Settings,
        pods: ResourceClient,
        secrets: ResourceClient,
        bound: PodCache,
        unbound: PodCache,
        addresses: AddressPool,
        processes: ProcessTable,
    ) -> None:
        self._s = settings
        self._pods = pods
        self._secrets = secrets
        self._bound = bound
        self._unbound = unbound
        self._addresses = addresses
        self._procs = processes
        self._lock = threading.Lock()
        self._records: dict[str, PodRecord] = {}  # guarded by _lock (the dict, not records)

    def restore(self) -> int:
        """Before the workers start: keep the IPs of the Pods already bound here."""
        kept = 0
        for pod in self._bound.list():
            ip = str((pod.get("status") or {}).get("podIP") or "")
            if ip and self._addresses.reserve(ip):
                record = self._new_record(pod, ip)
                with self._lock:
                    self._records[object_key(pod)] = record
                kept += 1
        return kept

    def sync(self, key: str) -> float | None:
        pod = self._bound.get(key)
        record = self._record(key)
        if record is not None and (pod is None or uid(pod) != record.uid):
            if not self._release(key, record, None):
                return None  # the reaper enqueues the key when the process has exited
            record = None
        if pod is None:
            self._bind(key)
            return None
        if deletion_requested(pod):
            if record is None or self._release(key, record, pod):
                self._finish_deletion(pod)
            return None
        if is_terminal(pod):
            return None
        if record is None:
            record = self._new_record(pod, "")
            with self._lock:
                self._records[key] = record
        if not record.ip:
            try:
                record.ip = self._addresses.allocate()
            except PoolExhausted as err:
                self._write(pod, record, _pending(pod, record, "NoPodIP", str(err)))
                raise RetryLater(str(err)) from err
        failure = None if record.started_at else pull_failure(main_image(pod))
        if failure is not None:
            reason = "ImagePullBackOff" if record.pull_attempts else "ErrImagePull"
            record.pull_attempts += 1
            self._write(pod, record, _pending(pod, record, reason, failure))
            raise RetryLater(f"{key}: {failure}")
        if self._s.no_processes:
            self._advance_status_only(pod, record)
            return None
        return self._advance(key, pod, record)

    # ------------------------------------------------------------- records
    def _record(self, key: str) -> PodRecord | None:
        with self._lock:
            return self._records.get(key)

    def _new_record(self, pod: Pod, ip: str) -> PodRecord:
        status = pod.get("status") or {}
        record = PodRecord(
            uid=uid(pod),
            ip=ip,
            start_time=str(status.get("startTime") or now_rfc3339()),
            grace=grace_seconds(pod, self._s.max_grace_seconds),
            restored=container_started(pod),
        )
        if record.restored:
            record.started_at = running_since(pod)
            record.ready_since = ready_since(pod)
        return record

    def _release(self, key: str, record: PodRecord, pod: Pod | None) -> bool:
        """Stop the Pod's process; True once it is gone and the IP is free."""
        proc = self._procs.get(key)
        if proc is not None and proc.exit_code is None:
            grace = record.grace if pod is None else grace_seconds(pod, self._s.max_grace_seconds)
            self._procs.terminate(key, grace)
            return False
        self._procs.forget(key)
        self._addresses.release(record.ip)
        with self._lock:
            self._records.pop(key, None)
        log.info("released %s (uid %s, ip %s)", key, record.uid, record.ip or "-")
        return True

    # --------------------------------------------------------------- API
    def _bind(self, key: str) -> None:
        pod = self._unbound.get(key)
        if pod is None or deletion_requested(pod) or is_terminal(pod):
            return
        if (pod.get("spec") or {}).get("nodeName"):
            return
        namespace, name = _name(pod)
        refusal = unschedulable(pod, node_labels(self._s.node_name))
        if refusal is not None:
            marked = pod_condition_reason(pod, "PodScheduled") == "Unschedulable"
            if not marked:
                status = unschedulable_status(message=refusal, since=now_rfc3339())
                with contextlib.suppress(NotFound):
                    self._pods.patch(
                        name, {"status": status}, namespace=namespace, subresource="status"
                    )
                log.info("not binding %s: %s", key, refusal)
            return
        binding = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": name, "namespace": namespace, "uid": uid(pod)},
            "target": {"apiVersion": "v1", "kind": "Node", "name": self._s.node_name},
        }
        path = PODS.path(namespace=namespace, name=name, subresource="binding")
        try:
            self._pods.rest.request("POST", path, info=_info("create", "binding"), body=binding)
        except (Conflict, NotFound) as err:
            log.info("not binding %s: %s", key, err)  # bound elsewhere, or gone
            return
        log.info("bound %s to %s", key, self._s.node_name)

    def _finish_deletion(self, pod: Pod) -> None:
        namespace, name = _name(pod)
        options = {"gracePeriodSeconds": 0, "preconditions": {"uid": uid(pod)}}
        with contextlib.suppress(NotFound, Conflict):
            self._pods.rest.request(
                "DELETE",
                PODS.path(namespace=namespace, name=name),
                info=_info("delete", ""),
                body=options,
            )
            log.info("deleted %s/%s", namespace, name)

    def _write(self, pod: Pod, record: PodRecord, desired: Status) -> None:
        if desired == record.last_written or not needs_write(pod.get("status"), desired):
            return
        namespace, name = _name(pod)
        try:
            self._pods.patch(
                str(name), {"status": desired}, namespace=namespace, subresource="status"
            )
        except NotFound:
            return
        record.last_written = desired

    def _read_secret(self, namespace: str, name: str) -> Mapping[str, str]:
        try:
            return decode_secret(self._secrets.get(name, namespace=namespace))
        except NotFound:
            raise KeyError(name) from None

    # ----------------------------------------------------------- advance
    def _advance_status_only(self, pod: Pod, record: PodRecord) -> None:
        if not record.started_at:
            record.started_at = now_rfc3339()
        if record.ready_since is None:
            record.ready_since = record.started_at
        self._write(pod, record, _running(pod, record))

    def _advance(self, key: str, pod: Pod, record: PodRecord) -> float | None:
        proc = self._procs.get(key)
        if proc is None and record.exit is None:
            if record.restored:
                record.exit = Exit(137, "ContainerStatusUnknown", now_rfc3339(), LOST_MESSAGE)
            else:
                proc = self._start(key, pod, record)
        if proc is not None and proc.exit_code is not None and record.exit is None:
            record.exit = Exit(
                code=proc.exit_code,
                reason=exit_reason(proc.exit_code),
                finished_at=proc.finished_at or now_rfc3339(),
                message=_termination_message(pod, proc),
            )
        if record.exit is not None:
            self._write(pod, record, _terminated(pod, record))
            return None
        delay = self._probe(pod, record)
        self._write(pod, record, _running(pod, record))
        return delay

    def _start(self, key: str, pod: Pod, record: PodRecord) -> KernelProcess | None:
        try:
            env = container_env(
                pod, read_secret=self._read_secret, pod_ip=record.ip, host_ip=HOST_IP
            )
        except EnvError as err:
            self._write(pod, record, _pending(pod, record, "CreateContainerConfigError", str(err)))
            raise RetryLater(f"{key}: {err}") from err
        environ = {**base_environment(pod), **env}
        environ.update(KERNEL_IP=record.ip, KERNEL_PYTHON=self._s.python)
        pod_dir = self._s.pods_dir / str(meta(pod).get("namespace")) / _dir_name(pod)
        script = self._s.launch_script
        try:
            if not script.is_file():
                raise FileNotFoundError(f"launch script {script} not found")
            proc = self._procs.start(
                key,
                record.uid,
                argv=["bash", str(script)],
                env=environ,
                cwd=pod_dir,
                log_path=pod_dir / "container.log",
            )
        except OSError as err:
            log.warning("cannot start %s: %s", key, err)
            record.exit = Exit(128, "StartError", now_rfc3339(), str(err))
            return None
        record.started_at = proc.started_at
        record.started_mono = time.monotonic()
        record.container_id = proc.container_id
        log.info("started %s: pid %d on %s, log %s", key, proc.pid, record.ip, proc.log_path)
        return proc

    def _probe(self, pod: Pod, record: PodRecord) -> float | None:
        """Check readiness; the delay until the next check, or None once Ready."""
        if record.ready_since is not None:
            return None
        probe = readiness_probe(pod)
        if probe is None or probe.port is None:
            record.ready_since = record.started_at
            return None
        wait = record.started_mono + probe.initial_delay - time.monotonic()
        if wait > 0:
            return wait
        if _port_open(record.ip, probe.port):
            record.ready_since = now_rfc3339()
            log.info("%s/%s ready: %s:%d accepts", *_name(pod), record.ip, probe.port)
            return None
        record.probe_attempts += 1
        cap = min(probe.period, MAX_PROBE_INTERVAL_SECONDS)
        return float(min(0.1 * 1.5**record.probe_attempts, cap))


def _running(pod: Pod, record: PodRecord) -> Status:
    return running_status(
        pod,
        pod_ip=record.ip,
        start_time=record.start_time,
        started_at=record.started_at,
        ready_since=record.ready_since,
        container_id=record.container_id,
    )


def _terminated(pod: Pod, record: PodRecord) -> Status:
    assert record.exit is not None
    return terminated_status(
        pod,
        pod_ip=record.ip,
        start_time=record.start_time,
        started_at=record.started_at,
        exit=record.exit,
        container_id=record.container_id,
    )


def _pending(pod: Pod, record: PodRecord, reason: str, message: str) -> Status:
    return pending_status(pod, start_time=record.start_time, reason=reason, message=message)


def _port_open(ip: str, port: int) -> bool:
    try:
        with socket.create_connection((ip, port), timeout=PROBE_TIMEOUT_SECONDS):
            return True
    except OSError:
        return False


def _termination_message(pod: Pod, proc: KernelProcess) -> str:
    """The log's tail for a failed container with ``FallbackToLogsOnError``, as a kubelet."""
    if proc.exit_code == 0 or termination_message_policy(pod) != "FallbackToLogsOnError":
        return ""
    return log_tail(proc.log_path)


def main_image(pod: Pod) -> str:
    containers = (pod.get("spec") or {}).get("containers") or [{}]
    return str(containers[0].get("image") or "")


def pod_condition_reason(pod: Pod, kind: str) -> str | None:
    for cond in (pod.get("status") or {}).get("conditions") or ():
        if cond.get("type") == kind:
            return str(cond.get("reason") or "")
    return None


def _name(pod: Pod) -> tuple[str, str]:
    return str(meta(pod).get("namespace") or ""), str(meta(pod).get("name") or "")


def _dir_name(pod: Pod) -> str:
    return f"{meta(pod).get('name')}-{uid(pod)[:8]}"


def _info(verb: str, subresource: str) -> RequestInfo:
    return RequestInfo(verb=verb, resource=f"pods/{subresource}" if subresource else "pods")
