"""The manager: runs one controller process from start to exit (SPEC §4-§6).

Start: logs and tracing → API client (metrics and spans per request; a QPS/burst throttle
only when ``--qps`` is set; ``429`` answers retried after their ``Retry-After``) →
metrics and probe servers → informers → caches synced → (with leader election) the Lease →
workers. Replicas on standby keep their caches warm, so a failover only has to start workers.

Stop (SIGTERM/SIGINT, or :meth:`Manager.request_stop`): stop taking work, let reconciles in
flight finish within ``--shutdown-timeout``, release the Lease, stop informers and servers,
flush traces, exit 0. A second signal exits at once. Losing the Lease: workers stop at once
and the process exits 1 (another replica leads now). A component that cannot start exits 1.

Threads: the main thread runs :meth:`Manager.run` and only waits; the elector runs on
``leader-elector``; the rest belong to the controller, the informers and the two servers.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from collections.abc import Callable, Mapping
from types import FrameType
from wsgiref.simple_server import WSGIServer

from kubernetes.client import ApiClient
from opentelemetry import trace
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client import disable_created_metrics as _untyped_disable_created

from informers import (
    QpsThrottle,
    RequestObserver,
    RestClient,
    Throttle,
    close_api_client,
    new_api_client,
)
from kernel_controller import logs, tracing
from kernel_controller.health import Check, ProbeServer
from kernel_controller.metrics import ControllerMetrics
from kernel_controller.pools import activation_key, pools_served
from kernel_controller.settings import Settings, split_address
from leader import LeaderCallbacks, LeaderElector, LeaseLock, Outcome
from reconcilers.controller import CONTROLLER_NAME, POOL_CONTROLLER_NAME, KernelController

log = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILED = 0, 1
SYNC_POLL_SECONDS = 0.5
STALLED_RECONCILE_SECONDS = 300.0


_disable_created_metrics: Callable[[], None] = _untyped_disable_created


class RequestObservers:
    """Fans one request notification out to several observers."""

    def __init__(self, *observers: RequestObserver) -> None:
        self._observers = observers

    def request_done(
        self, *, method: str, verb: str, resource: str, code: int, seconds: float
    ) -> None:
        for observer in self._observers:
            observer.request_done(
                method=method, verb=verb, resource=resource, code=code, seconds=seconds
            )


class Manager:
    """Owns every long-lived component of the process; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        *,
        environ: Mapping[str, str],
        identity: str | None = None,
        install_signals: bool = True,
        configure_logging: bool = True,
    ) -> None:
        self.settings = settings
        self._environ = environ
        self.identity = identity or f"{socket.gethostname()}_{os.getpid()}"
        self._install_signals = install_signals
        self._configure_logging = configure_logging
        self._stop = threading.Event()
        self._signals = 0
        self._lost = threading.Event()
        self.controller: KernelController | None = None
        self.elector: LeaderElector | None = None
        self.registry = CollectorRegistry()
        self.probe_port = 0
        self.metrics_port = 0
        self._ready = threading.Event()
        self._elector_thread: threading.Thread | None = None

    # ------------------------------------------------------------------ public
    def request_stop(self) -> None:
        """Begin a graceful shutdown (what SIGTERM does). Any thread."""
        self._stop.set()

    def wait_ready(self, timeout: float) -> bool:
        """For tests: wait until the servers listen and the caches have synced."""
        return self._ready.wait(timeout)

    def run(self) -> int:
        s = self.settings
        if self._configure_logging:
            logs.configure(level=s.log_level.value, fmt=s.log_format.value)
        log.info("starting kernel-controller", extra={"settings": s.as_log_dict()})
        provider = tracing.configure(self._environ)
        if self._install_signals:
            signal.signal(signal.SIGTERM, self._on_signal)
            signal.signal(signal.SIGINT, self._on_signal)
        try:
            # workers + event recorder + one watch per informer and namespace + a few spare
            api = new_api_client(
                s.kubeconfig, pool_size=s.workers + 4 * max(1, len(s.namespaces)) + 8
            )
        except Exception as err:
            log.error("cannot load the cluster configuration: %s", err)
            return EXIT_FAILED
        _disable_created_metrics()  # no *_created series: controller-runtime has none
        metrics = ControllerMetrics(self.registry, host=str(api.configuration.host))
        tracer = tracing.tracer()
        observers = RequestObservers(metrics.request_observer(), tracing.RequestSpans(tracer))

        controller = self._build_controller(api, metrics, tracer, observers)
        servers = self._start_servers(controller)
        if servers is None:
            close_api_client(api)
            return EXIT_FAILED
        metrics_server, probe_server = servers
        code = EXIT_OK
        try:
            controller.start()
            if not self._wait_for_sync(controller):
                log.info("stopped before the caches synced")
            else:
                self._ready.set()
                log.info("caches synced")
                if s.enable_leader_election:
                    self._start_elector(api, metrics)
                else:
                    controller.start_workers()
                self._stop.wait()
                code = EXIT_FAILED if self._lost.is_set() else EXIT_OK
        finally:
            code = self._shut_down(
                controller=controller,
                servers=(metrics_server, probe_server),
                code=code,
            )
            if provider is not None:
                provider.shutdown()
            close_api_client(api)
        return code

    # ---------------------------------------------------------------- internals
    def _build_controller(
        self,
        api: ApiClient,
        metrics: ControllerMetrics,
        tracer: trace.Tracer,
        observers: RequestObserver,
    ) -> KernelController:
        s = self.settings
        budget = s.throttle()

        def rest_client() -> RestClient:
            throttle: Throttle | None = None
            if budget is not None:
                throttle = QpsThrottle(qps=budget[0], burst=budget[1])
            return RestClient(
                api,
                observer=observers,
                throttle=throttle,
                user_agent="kernel-controller/0.1",
                # A shutdown ends Retry-After waits at once: reconciles in flight fail fast
                # (their keys are dropped with the queue) instead of holding the exit.
                interrupt=self._stop,
            )

        rest = rest_client()
        pools = pools_served(rest, self._stop)
        key = activation_key(rest, s.leader_election_namespace, self._stop) if pools else None
        if not pools:
            log.info("the KernelPool API is not served (its CRD is not installed): no warm pools")
        controller = KernelController(
            rest=rest,
            # Events get a client of their own, as controller-runtime's recorder does: with
            # --qps set, they have a budget of their own and never take the creates' share.
            events_rest=rest_client(),
            settings=s.reconcile_settings(),
            instance=self.identity,
            namespaces=s.namespaces,
            workers=s.workers,
            queue_metrics=metrics.queue_metrics(CONTROLLER_NAME),
            kernel_metrics=metrics.kernel_metrics(),
            observer=metrics.reconcile_observer(),
            tracer=tracer,
            pools=pools,
            activation_key=key,
            pool_queue_metrics=metrics.queue_metrics(POOL_CONTROLLER_NAME),
        )
        self.controller = controller
        metrics.set_max_concurrent(s.workers)
        metrics.watch_caches(
            kernels=controller.kernels,
            informers={
                "kernels": controller.kernels,
                "pods": controller.pods,
                "services": controller.services,
                **({"events": controller.warnings} if controller.warnings else {}),
                **(
                    {"namespaces": controller.namespace_informer}
                    if controller.namespace_informer
                    else {}
                ),
                **({"kernelpools": controller.pools} if controller.pools else {}),
                **({"pool-pods": controller.pool_pods} if controller.pool_pods else {}),
            },
            queues=controller.queues,
            pool_idle=controller.idle_by_pool,
        )
        return controller

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals += 1
        if self._signals > 1:
            os._exit(EXIT_FAILED)  # second signal: exit at once
        log.info("received %s: shutting down", signal.Signals(signum).name)
        self._stop.set()

    def _wait_for_sync(self, controller: KernelController) -> bool:
        while not self._stop.is_set():
            if controller.wait_for_sync(SYNC_POLL_SECONDS):
                return True
        return False

    def _start_servers(
        self, controller: KernelController
    ) -> tuple[WSGIServer | None, ProbeServer | None] | None:
        s = self.settings
        metrics_server = probe_server = None
        try:
            metrics_at = split_address(s.metrics_addr)
            if metrics_at is not None:
                httpd, _ = start_http_server(
                    metrics_at[1],
                    addr=metrics_at[0] or "0.0.0.0",  # noqa: S104 - scraped from other Pods
                    registry=self.registry,
                )
                metrics_server = httpd
                self.metrics_port = int(httpd.server_address[1])
            probe_at = split_address(s.probe_addr)
            if probe_at is not None:
                probe_server = ProbeServer(
                    host=probe_at[0] or "0.0.0.0",  # noqa: S104 - probes come from the kubelet
                    port=probe_at[1],
                    groups={
                        "/healthz": self._health_checks(controller),
                        "/readyz": {
                            "caches": lambda: None if controller.has_synced() else "not synced"
                        },
                    },
                )
                probe_server.start()
                self.probe_port = probe_server.port
        except OSError as err:
            log.error("cannot listen: %s", err)
            if metrics_server is not None:
                metrics_server.shutdown()
            return None
        return metrics_server, probe_server

    def _health_checks(self, controller: KernelController) -> dict[str, Check]:
        def threads() -> str | None:
            return None if controller.threads_alive() else "a controller thread died"

        def stalled() -> str | None:
            stuck = controller.stalled_workers(STALLED_RECONCILE_SECONDS)
            return f"reconcile stalled on {', '.join(stuck)}" if stuck else None

        def elector() -> str | None:
            thread = self._elector_thread
            if thread is None or self._stop.is_set() or thread.is_alive():
                return None
            return "the leader elector stopped"

        return {"threads": threads, "reconciles": stalled, "leader-election": elector}

    def _start_elector(self, api: ApiClient, metrics: ControllerMetrics) -> None:
        s = self.settings
        controller = self.controller
        assert controller is not None
        name = s.leader_election_id

        def started(leading_stop: threading.Event) -> None:
            metrics.set_leader(name, True)
            log.info("became the leader; starting workers")
            controller.start_workers()

        def stopped() -> None:
            metrics.set_leader(name, False)
            if self._stop.is_set():
                drained = controller.stop_workers(drain_timeout=s.shutdown_timeout)
                log.info("stopped leading (shutdown); reconciles drained: %s", drained)
            else:
                controller.stop_workers(drain_timeout=0)
                log.error("lost the leader lease; stopping")

        self.elector = LeaderElector(
            config=s.leader_config(self.identity),
            lock=LeaseLock(api_client=api, namespace=s.leader_election_namespace, name=name),
            callbacks=LeaderCallbacks(on_started_leading=started, on_stopped_leading=stopped),
        )
        metrics.set_leader(name, False)

        def campaign() -> None:
            assert self.elector is not None
            try:
                outcome = self.elector.run(self._stop)
            except Exception:
                log.exception("leader election failed")
                outcome = Outcome.LOST
            if outcome is Outcome.LOST:
                self._lost.set()
                self._stop.set()

        thread = threading.Thread(target=campaign, name="leader-elector")
        self._elector_thread = thread
        thread.start()

    def _shut_down(
        self,
        *,
        controller: KernelController,
        servers: tuple[WSGIServer | None, ProbeServer | None],
        code: int,
    ) -> int:
        s = self.settings
        self._stop.set()
        elector_thread = self._elector_thread
        if elector_thread is not None:
            # The elector steps down (draining the workers) and releases the Lease.
            elector_thread.join(s.shutdown_timeout + s.retry_period + 10)
        drained = controller.stop(drain_timeout=0 if self._lost.is_set() else s.shutdown_timeout)
        if not drained and code == EXIT_OK:
            log.warning("reconciles still running at the shutdown deadline")
        metrics_server, probe_server = servers
        if probe_server is not None:
            probe_server.stop()
        if metrics_server is not None:
            metrics_server.shutdown()
            metrics_server.server_close()
        log.info("stopped", extra={"exit_code": code})
        return code
