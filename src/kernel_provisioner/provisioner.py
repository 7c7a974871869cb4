"""``KernelControllerProvisioner``: a ``jupyter_client`` kernel provisioner that runs every
kernel as a Kernel resource of the Jupyter Kernel Controller (SPEC §12).

Entry point ``kernel-controller-provisioner`` (group ``jupyter_client.kernel_provisioners``);
a kernelspec selects it with ``metadata.kernel_provisioner.provisioner_name``, and its
``config`` sets the traits below (:mod:`kernel_provisioner.config` resolves them with the
launch environment). The controller owns the Pod, the Service, the status, culling and
re-creation; the provisioner creates, watches and deletes one object.

What each ``jupyter_client`` call does here ("the Pod" is the kernel's process):

- ``pre_launch``: resolve the settings, name the Kernel ``<user>-<kernel id>``.
- ``launch_kernel``: create the Kernel (``KERNEL_ID`` = Jupyter's kernel id; with ``pool``
  set, ``spec.poolRef``, so that a warm kernel of that KernelPool is claimed for it when one is
  idle) and wait for it to be Ready, failing fast — the Kernel deleted, the reason in the
  exception — when it reports a reason that will not clear by waiting, or after
  ``launch_timeout``. After a restart (the Kernel still exists) it creates nothing and waits
  for the new Pod instead. The connection info is the controller's annotation with the host
  of ``connect_via`` and, in secret-key mode, the key of the Secret named in the status.
- ``poll``/``wait``: from the shared watch (:mod:`kernel_provisioner.cluster`), no request.
- ``shutdown_requested(restart=True)``, ``terminate``, ``kill``: delete the Pod (gracefully,
  or at once for ``kill``; found by its ``jupyter.org/kernel-name`` label, as a Pod claimed
  from a pool has a name of its own); the controller creates it again (cold) with the same
  identity.
  ``shutdown_requested(restart=False)`` marks the shutdown as final, after which
  ``terminate``/``kill`` delete the Kernel itself.
- ``send_signal``: ``SIGINT`` is sent as an ``interrupt_request`` on the control channel (the
  kernelspec also says ``interrupt_mode: message``); ``SIGTERM``/``SIGKILL`` terminate/kill.
- ``cleanup(restart=False)``: delete the Kernel and wait (bounded) until it is gone.
- ``get_provisioner_info``/``load_provisioner_info``: the Kernel's cluster, namespace and name,
  so a restarted server reattaches to its kernels instead of leaking them.

Every API request runs on the registry's worker threads (``Clusters.run``): the server's event
loop is never blocked. The kernel's key is never logged.
"""

from __future__ import annotations

import asyncio
import base64
import getpass
import signal
import time
from typing import Any

from jupyter_client.connect import KernelConnectionInfo
from jupyter_client.provisioning.provisioner_base import KernelProvisionerBase
from traitlets import Dict, Float, Int, Unicode

from informers import ApiError, Conflict, Invalid, NotFound
from kernel_provisioner.cluster import Cluster, Clusters, NamespaceWatch
from kernel_provisioner.config import (
    KNOWN_KEYS,
    ConfigError,
    ConnectVia,
    LaunchConfig,
    resolve,
)
from kernel_provisioner.connection import NotPublished, connection_info, key_secret
from kernel_provisioner.kernelbody import kernel_body, kernel_name
from kernel_provisioner.state import Phase, exit_status, launch_state
from reconcilers.model import SECRET_KEY_FIELD, Obj, meta

SYNC_TIMEOUT_SECONDS = 60.0
GONE_TIMEOUT_SECONDS = 30.0
WAIT_RECHECK_SECONDS = 1.0
INFO_KEY = "kernel_controller"  # our part of get_provisioner_info()


class LaunchError(RuntimeError):
    """The Kernel will not become Ready; ``reason`` is the Kernel's (e.g. ``ImagePullError``)."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class KernelControllerProvisioner(KernelProvisionerBase):
    """Runs a Jupyter kernel as a Kernel resource; see the module docstring."""

    namespace = Unicode(None, allow_none=True, config=True, help="Namespace of the Kernels.")
    image = Unicode(None, allow_none=True, config=True, help="The kernel container's image.")
    pool = Unicode(
        None, allow_none=True, config=True, help="A KernelPool to claim a warm kernel from."
    )
    template = Dict(
        default_value=None,
        allow_none=True,
        config=True,
        help="Pod template merged under spec.template.",
    )
    connect_via = Unicode(
        None, allow_none=True, config=True, help="Host for clients: 'service' or 'pod-ip'."
    )
    launch_timeout = Float(
        None, allow_none=True, config=True, help="Seconds to wait for a kernel to be Ready."
    )
    idle_timeout = Int(
        None, allow_none=True, config=True, help="Seconds of idleness before the kernel exits."
    )
    kubeconfig = Unicode(None, allow_none=True, config=True, help="kubeconfig of the cluster.")

    def __init__(self, **kwargs: Any) -> None:
        unknown = set(kwargs) - set(self.class_trait_names()) - {"parent", "config", "log"}
        if unknown:
            raise ConfigError(
                f"unknown kernel_provisioner config key(s) {', '.join(sorted(unknown))}; "
                f"known: {', '.join(sorted(KNOWN_KEYS))}"
            )
        super().__init__(**kwargs)
        self.connection_info: KernelConnectionInfo = {}  # per instance, never shared
        self._launch: LaunchConfig | None = None
        self._kubeconfig: str | None = None
        self._namespace = ""
        self._name = ""  # the Kernel resource's name, once decided
        self._connect_via = ConnectVia.SERVICE
        self._pod_uid = ""  # the Pod of the kernel launched last
        self._pod_name = ""  # its name (a Pod claimed from a warm pool is not named like it)
        self._final = False  # a shutdown without restart was requested
        self._running = False

    # ------------------------------------------------------------ launching
    @property
    def has_process(self) -> bool:
        return self._running

    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        kwargs = await super().pre_launch(cmd=list(self.kernel_spec.argv or []), **kwargs)
        configured = {k: getattr(self, k) for k in KNOWN_KEYS if getattr(self, k) is not None}
        launch = resolve(configured, kwargs.get("env") or {}, default_username=getpass.getuser())
        self._launch = launch
        self._kubeconfig = launch.kubeconfig
        self._namespace = launch.namespace
        self._connect_via = launch.connect_via
        if not self._name:
            self._name = kernel_name(launch.username, str(self.kernel_id))
        self._final = False
        return kwargs

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> KernelConnectionInfo:
        launch = self._launch
        assert launch is not None, "pre_launch first"
        watch = await self._watch()
        replacing = self._pod_uid if watch.kernel(self._name) is not None else ""
        if not replacing:
            self._pod_uid = ""
            self._pod_name = ""
            await self._create(launch)
        self.log.info(
            "%s Kernel %s/%s (kernel %s)",
            "restarting" if replacing else "created",
            self._namespace,
            self._name,
            self.kernel_id,
        )
        try:
            kernel, pod = await self._until_ready(watch, launch.launch_timeout, replacing)
            self._adopt(pod)
            info = await self._connection_info(kernel, pod)
        except (Exception, asyncio.CancelledError):
            await self._give_up()  # a launch that fails leaves no Kernel behind
            raise
        self.connection_info = info
        self._running = True
        return info

    async def _create(self, launch: LaunchConfig) -> None:
        body = kernel_body(name=self._name, kernel_id=str(self.kernel_id), config=launch)
        kernels = self._cluster().kernels(self._namespace)
        deadline = time.monotonic() + launch.launch_timeout
        while True:
            try:
                await Clusters.shared().run(kernels.create, body)
                return
            except Invalid as err:
                raise LaunchError(
                    f"the Kernel {self._namespace}/{self._name} was rejected: {err.message}",
                    reason="Invalid",
                ) from err
            except Conflict as err:
                # A Kernel of that name is still being deleted (a kernel that ended and is
                # started again): wait for it to go.
                if not err.already_exists or time.monotonic() > deadline:
                    raise
                watch = await self._watch()
                with watch.subscribe(self._name) as changes:
                    if watch.kernel(self._name) is not None:
                        await changes.wait(deadline - time.monotonic())
            except ApiError as err:
                raise LaunchError(
                    f"cannot create the Kernel {self._namespace}/{self._name}: {err.message}",
                    reason=type(err).__name__,
                ) from err

    async def _until_ready(
        self, watch: NamespaceWatch, timeout: float, replacing: str
    ) -> tuple[Any, Any]:
        deadline = time.monotonic() + timeout
        last = ""
        seen = bool(replacing)  # a new Kernel reaches the cache a moment after its create
        with watch.subscribe(self._name) as changes:
            while True:
                kernel = watch.kernel(self._name)
                pod = _newest(watch.kernel_pods(self._name), but=replacing)
                seen = seen or kernel is not None
                state = launch_state(kernel, pod, replacing_pod_uid=replacing)
                if state.phase is Phase.GONE and not seen:
                    state = launch_state({}, None)  # created, not in the cache yet: pending
                if state.phase is Phase.READY:
                    return kernel, pod
                if state.reason != last:
                    last = state.reason
                    self.log.info("Kernel %s/%s: %s", self._namespace, self._name, state.describe())
                if state.phase is Phase.FAILED:
                    raise LaunchError(
                        f"kernel {self._namespace}/{self._name} cannot start: {state.describe()}",
                        reason=state.reason,
                    )
                if state.phase is Phase.GONE:
                    raise LaunchError(
                        f"the Kernel {self._namespace}/{self._name} was deleted while starting",
                        reason=state.reason,
                    )
                left = deadline - time.monotonic()
                if left <= 0:
                    raise LaunchError(
                        f"kernel {self._namespace}/{self._name} not Ready after {timeout:g} s "
                        f"(launch timeout; last state: {state.describe()})",
                        reason="LaunchTimeout",
                    )
                await changes.wait(left)

    async def _give_up(self) -> None:
        """A failed launch leaves nothing behind: delete the Kernel, wait until it is gone."""
        self._running = False
        self._pod_uid = ""
        self._pod_name = ""
        await self._delete_kernel()
        await self._until_gone()

    async def _connection_info(self, kernel: Any, pod: Any) -> KernelConnectionInfo:
        secret_key = None
        secret = key_secret(kernel)
        if secret is not None:
            data = await Clusters.shared().run(self._cluster().secrets(self._namespace).get, secret)
            secret_key = base64.b64decode((data.get("data") or {})[SECRET_KEY_FIELD]).decode()
        try:
            info = connection_info(
                kernel,
                connect_via=self._connect_via,
                kernel_name=str(getattr(self.parent, "kernel_name", "") or ""),
                pod_ip=str((pod.get("status") or {}).get("podIP") or "") or None,
                secret_key=secret_key,
            )
        except NotPublished as err:
            raise LaunchError(
                f"the Kernel {self._namespace}/{self._name} is Ready but {err}",
                reason="NotPublished",
            ) from err
        info["key"] = str(info["key"]).encode()  # jupyter_client compares keys as bytes
        return info  # type: ignore[return-value]

    # ------------------------------------------------------------ lifecycle
    async def poll(self) -> int | None:
        if not self._running:
            return 0
        watch = self._cluster().watch(self._namespace)
        if not watch.kernels.has_synced() or not watch.pods.has_synced():
            return None  # not known yet (after a reattach): alive
        kernel = watch.kernel(self._name)
        its_pods = watch.kernel_pods(self._name)
        if not self._pod_uid and its_pods:
            self._adopt(its_pods[0])  # reattached: adopt its Pod
        launched = [p for p in its_pods if meta(p).get("uid") == self._pod_uid]
        pod = launched[0] if launched else _newest(its_pods)
        return exit_status(kernel, pod, launched_pod_uid=self._pod_uid)

    async def wait(self) -> int | None:
        if not self._running:
            return 0
        watch = await self._watch()
        with watch.subscribe(self._name) as changes:
            while True:
                code = await self.poll()
                if code is not None:
                    return code
                await changes.wait(WAIT_RECHECK_SECONDS)

    async def send_signal(self, signum: int) -> None:
        if signum == 0:
            return
        if signum == signal.SIGINT:
            await Clusters.shared().run(self._interrupt)
        elif signum == signal.SIGKILL:
            await self.kill()
        elif signum == signal.SIGTERM:
            await self.terminate()
        else:
            self.log.warning("signal %d is not sent to kernels in Pods; ignored", signum)

    async def shutdown_requested(self, restart: bool = False) -> None:
        if restart:
            await self._delete_pod(grace_period=None)  # replaced with the same identity
        else:
            self._final = True  # the kernel exits; the controller culls its Kernel

    async def terminate(self, restart: bool = False) -> None:
        if self._final and not restart:
            await self._delete_kernel()
        else:
            await self._delete_pod(grace_period=None)

    async def kill(self, restart: bool = False) -> None:
        if self._final and not restart:
            await self._delete_kernel()
        else:
            await self._delete_pod(grace_period=0)

    async def cleanup(self, restart: bool = False) -> None:
        if restart or not self._name:
            return
        await self._delete_kernel()
        await self._until_gone()
        self._running = False
        self._pod_uid = ""
        self._pod_name = ""

    def get_stable_start_time(self, recommended: float = 10.0) -> float:
        launch = self._launch
        return max(recommended, launch.launch_timeout if launch is not None else recommended)

    async def get_provisioner_info(self) -> dict[str, Any]:
        info: dict[str, Any] = await super().get_provisioner_info()
        info[INFO_KEY] = {
            "kubeconfig": self._kubeconfig,
            "namespace": self._namespace,
            "name": self._name,
            "connect_via": self._connect_via.value,
            "pod_uid": self._pod_uid,
            "pod_name": self._pod_name,
        }
        return info

    async def load_provisioner_info(self, provisioner_info: dict[str, Any]) -> None:
        await super().load_provisioner_info(provisioner_info)
        mine = provisioner_info.get(INFO_KEY) or {}
        self._kubeconfig = mine.get("kubeconfig")
        self._namespace = str(mine.get("namespace") or "")
        self._name = str(mine.get("name") or "")
        self._connect_via = ConnectVia(mine.get("connect_via") or ConnectVia.SERVICE.value)
        self._pod_uid = str(mine.get("pod_uid") or "")
        self._pod_name = str(mine.get("pod_name") or "") or self._name
        self._running = bool(self._namespace and self._name)

    # ------------------------------------------------------------ internals
    def _adopt(self, pod: Obj) -> None:
        self._pod_uid = str(meta(pod).get("uid") or "")
        self._pod_name = str(meta(pod).get("name") or "")

    def _cluster(self) -> Cluster:
        return Clusters.shared().get(self._kubeconfig)

    async def _watch(self) -> NamespaceWatch:
        launch = self._launch
        timeout = min(
            SYNC_TIMEOUT_SECONDS, launch.launch_timeout if launch else SYNC_TIMEOUT_SECONDS
        )
        watch = self._cluster().watch(self._namespace)
        if not await Clusters.shared().run(watch.wait_for_sync, timeout):
            raise LaunchError(
                f"cannot list and watch Kernels and Pods in namespace {self._namespace} "
                f"within {timeout:g} s (RBAC? see config/provisioner-rbac)",
                reason="WatchNotSynced",
            )
        return watch

    async def _delete_kernel(self) -> None:
        if not self._name:
            return
        kernels = self._cluster().kernels(self._namespace)
        try:
            await Clusters.shared().run(kernels.delete, self._name)
        except NotFound:
            return
        self.log.info("deleted Kernel %s/%s", self._namespace, self._name)

    async def _delete_pod(self, *, grace_period: int | None) -> None:
        """Delete the launched Pod (only that one: a uid precondition); the controller
        creates it again."""
        if not self._name or not self._pod_uid:
            return
        pods = self._cluster().pods(self._namespace)
        try:
            await Clusters.shared().run(
                pods.delete,
                self._pod_name or self._name,
                uid=self._pod_uid,
                grace_period=grace_period,
            )
        except (NotFound, Conflict):
            return  # already gone, or already replaced
        self.log.info(
            "deleted Pod %s/%s to replace its kernel", self._namespace, self._pod_name or self._name
        )

    async def _until_gone(self) -> None:
        watch = await self._watch()
        deadline = time.monotonic() + GONE_TIMEOUT_SECONDS
        with watch.subscribe(self._name) as changes:
            while watch.kernel(self._name) is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    self.log.warning(
                        "Kernel %s/%s still exists %g s after its deletion",
                        self._namespace,
                        self._name,
                        GONE_TIMEOUT_SECONDS,
                    )
                    return
                await changes.wait(left)

    def _interrupt(self) -> None:
        """Send an ``interrupt_request`` on the control channel (blocking, brief)."""
        import zmq  # noqa: PLC0415 - pyzmq comes with jupyter_client; only for interrupts
        from jupyter_client.session import Session  # noqa: PLC0415

        info = self.connection_info
        if not info:
            return
        key = info.get("key") or b""
        session = Session(
            key=key if isinstance(key, bytes) else str(key).encode(),
            signature_scheme=str(info.get("signature_scheme") or "hmac-sha256"),
        )
        context: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
        socket = context.socket(zmq.DEALER)
        socket.linger = 1000
        try:
            socket.connect(f"{info.get('transport', 'tcp')}://{info['ip']}:{info['control_port']}")
            session.send(socket, "interrupt_request", content={})
        finally:
            socket.close()


def _newest(candidates: list[Obj], *, but: str = "") -> Obj | None:
    """The newest of ``candidates`` (Pods, newest first) whose uid is not ``but``, or None."""
    return next((p for p in candidates if not but or meta(p).get("uid") != but), None)
