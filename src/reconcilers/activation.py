"""Activating a standby kernel of a warm pool (SPEC §13): the controller's side of the
launcher's standby protocol (``kernel_launch/launch_ipykernel.py``).

A standby Pod's launcher has done its slow imports and waits, binding no kernel port, on its
activation port. Activating it gives it the claiming Kernel's identity — id, key, the five
ports, idle timeout — in one ``POST /activate`` over the Pod network; it answers 200 only once
the kernel listens, 409 when it was already activated for another identity.

The request is authenticated by a per-Pod token: an HMAC of the Pod's namespace and name under
the controller's activation key (one Secret in the controller's namespace, shared by its
replicas), so the controller derives the token of any Pod it started without ever reading the
Pod's own Secret, and after a restart as before. The Pod gets its token from a Secret the pool
controller creates for it (``<pod>-activation``), so only the controller and the Pod (and
whoever may read that namespace's Secrets) know it. The kernel's key travels only in the
request body: never in a Pod field, a label or a log line.

Runs on worker threads; blocking HTTP with a timeout, never through a proxy.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Protocol

from reconcilers.model import KernelPorts

ACTIVATION_TIMEOUT_SECONDS = 30.0


def activation_token(key: bytes, *, namespace: str, pod_name: str) -> str:
    """The token of the standby Pod ``namespace/pod_name`` under the activation ``key``."""
    return hmac.new(key, f"{namespace}/{pod_name}".encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class ActivationRequest:
    """The identity a standby kernel takes on."""

    kernel_id: str
    key: str = field(repr=False)
    ports: KernelPorts
    idle_timeout: int = 0

    def body(self) -> bytes:
        ports = {name: getattr(self.ports, name) for name, _ in KernelPorts.ENV}
        return json.dumps(
            {
                "kernel_id": self.kernel_id,
                "key": self.key,
                "ports": ports,
                "idle_timeout": self.idle_timeout,
            }
        ).encode()


class ActivationRefused(Exception):
    """The standby kernel was already activated for another identity (409)."""


class ActivationFailed(Exception):
    """The activation did not go through (no answer, a bad token, the kernel did not start);
    worth retrying."""


class Activator(Protocol):
    def activate(self, *, host: str, port: int, token: str, request: ActivationRequest) -> None:
        """Activate the standby kernel at ``host:port``; raise on failure."""
        ...


class HttpActivator:
    """Activates over HTTP (``POST /activate``), bypassing any configured proxy."""

    def __init__(self, *, timeout: float = ACTIVATION_TIMEOUT_SECONDS) -> None:
        self._timeout = timeout
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def activate(self, *, host: str, port: int, token: str, request: ActivationRequest) -> None:
        address = f"[{host}]" if ":" in host else host
        http = urllib.request.Request(
            f"http://{address}:{port}/activate",
            data=request.body(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            method="POST",
        )
        try:
            with self._opener.open(http, timeout=self._timeout) as answer:
                answer.read()
        except urllib.error.HTTPError as err:
            detail = _error_text(err)
            if err.code == 409:
                raise ActivationRefused(detail) from err
            raise ActivationFailed(f"HTTP {err.code}: {detail}") from err
        except (urllib.error.URLError, OSError) as err:
            raise ActivationFailed(f"no answer from {host}:{port}: {err}") from err


def _error_text(err: urllib.error.HTTPError) -> str:
    try:
        payload = json.loads(err.read() or b"{}")
    except ValueError:
        return err.reason if isinstance(err.reason, str) else ""
    message = payload.get("error") if isinstance(payload, dict) else None
    return str(message or err.reason)
