"""Events on Kernels (``core/v1`` Events), so ``kubectl describe kernel`` tells the story.

Recording an Event is best effort: a failure is logged and never fails a reconcile. Messages
are written by this controller (or copied from the Pod's own Warning Events) and never carry
the kernel's key. Runs on worker threads; thread-safe.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from informers import ApiError, ResourceClient
from reconcilers.model import API_VERSION, FIELD_MANAGER, KIND, Obj, meta

log = logging.getLogger(__name__)

MAX_MESSAGE_CHARS = 1024


class EventRecorder:
    """Creates Events about Kernels through ``events`` (a namespaced-path ResourceClient)."""

    def __init__(
        self,
        events: ResourceClient,
        *,
        instance: str,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._events = events
        self._instance = instance
        self._wall_clock = wall_clock

    def record(self, kernel: Obj, *, type_: str, reason: str, message: str) -> bool:
        """Create one Event on ``kernel``; return whether it was written."""
        m = meta(kernel)
        name, namespace = m.get("name", ""), m.get("namespace", "")
        now = self._wall_clock().strftime("%Y-%m-%dT%H:%M:%SZ")
        event: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{name}.{secrets.token_hex(8)}", "namespace": namespace},
            "involvedObject": {
                "apiVersion": API_VERSION,
                "kind": KIND,
                "name": name,
                "namespace": namespace,
                "uid": m.get("uid", ""),
                "resourceVersion": m.get("resourceVersion", ""),
            },
            "type": type_,
            "reason": reason,
            "message": message[:MAX_MESSAGE_CHARS],
            "source": {"component": FIELD_MANAGER},
            "reportingComponent": FIELD_MANAGER,
            "reportingInstance": self._instance,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            self._events.create(event, namespace=namespace)
        except ApiError as err:
            log.warning(
                "could not record event %s on kernel %s/%s: %s", reason, namespace, name, err
            )
            return False
        return True
