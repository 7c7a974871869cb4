"""What warm pools (SPEC §13) need before the controller starts: whether the cluster serves
the KernelPool API, and the activation key.

The activation key is one random 256-bit value in the Secret ``kernel-controller-activation``
(field ``key``) of the controller's own namespace (``--leader-election-namespace``), created
by the first replica that finds none and read by every later one, so that all replicas and
restarts derive the same per-Pod activation tokens. Without it (the Secret can neither be
read nor created) warm pools are off: no standby Pod is started, and Kernels naming a pool
start cold. Runs once, on the main thread, before the informers start.
"""

from __future__ import annotations

import base64
import logging
import secrets
import threading

from informers import (
    ApiError,
    Conflict,
    ConnectionFailed,
    NotFound,
    RequestInfo,
    Resource,
    ResourceClient,
    RestClient,
    ServerError,
)
from reconcilers.model import GROUP, POOL_PLURAL, POOL_VERSION

log = logging.getLogger(__name__)

ACTIVATION_SECRET = "kernel-controller-activation"  # noqa: S105 - a name, not a secret
KEY_FIELD = "key"
KEY_BYTES = 32
ATTEMPTS = 5
RETRY_SECONDS = 1.0
SECRETS = Resource("", "v1", "secrets")


def pools_served(rest: RestClient, stop: threading.Event) -> bool:
    """Whether the API server serves ``kernelpools.jupyter.org`` (its CRD is installed)."""
    path = f"/apis/{GROUP}/{POOL_VERSION}"
    info = RequestInfo(verb="get", resource="discovery")
    for attempt in range(ATTEMPTS):
        try:
            found = rest.request("GET", path, info=info)
        except NotFound:
            return False
        except (ConnectionFailed, ServerError) as err:
            if attempt + 1 == ATTEMPTS or stop.wait(RETRY_SECONDS):
                log.warning("cannot tell whether KernelPools are served: %s", err)
                return False
            continue
        except ApiError as err:
            log.warning("cannot tell whether KernelPools are served: %s", err)
            return False
        resources = found.get("resources") or ()
        return any(r.get("name") == POOL_PLURAL for r in resources)
    return False


def activation_key(rest: RestClient, namespace: str, stop: threading.Event) -> bytes | None:
    """The shared activation key (read, or created when missing); None when impossible."""
    client = ResourceClient(rest, SECRETS, namespace=namespace)
    for attempt in range(ATTEMPTS):
        try:
            return _read_or_create(client, namespace)
        except (ConnectionFailed, ServerError, Conflict) as err:
            # Conflict: another replica created it between our read and our create.
            if attempt + 1 == ATTEMPTS or stop.wait(RETRY_SECONDS):
                log.warning("no activation key (%s): warm pools are off", err)
                return None
        except (ApiError, ValueError) as err:
            log.warning(
                "no activation key in secret %s/%s (%s): warm pools are off",
                namespace,
                ACTIVATION_SECRET,
                err,
            )
            return None
    return None


def _read_or_create(client: ResourceClient, namespace: str) -> bytes:
    try:
        secret = client.get(ACTIVATION_SECRET)
    except NotFound:
        key = secrets.token_bytes(KEY_BYTES)
        client.create(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "type": "Opaque",
                "metadata": {
                    "name": ACTIVATION_SECRET,
                    "labels": {"app.kubernetes.io/name": "kernel-controller"},
                },
                "data": {KEY_FIELD: base64.b64encode(key).decode()},
            }
        )
        log.info("created the activation key in secret %s/%s", namespace, ACTIVATION_SECRET)
        return key
    encoded = (secret.get("data") or {}).get(KEY_FIELD) or ""
    key = base64.b64decode(encoded, validate=True)
    if len(key) < KEY_BYTES // 2:
        raise ValueError(f"its {KEY_FIELD!r} field holds {len(key)} bytes, fewer than 16")
    return key
