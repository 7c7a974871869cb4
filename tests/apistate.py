"""What tests against the real API server share: request counting, writes that retry through
an API server restart, and the server's and a cache's state as ``key -> resourceVersion``."""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable

from informers.errors import ApiError, Conflict, ConnectionFailed, NotFound, ServerError
from informers.resource import Resource, ResourceClient
from informers.shared_informer import SharedInformer

CONFIGMAPS = Resource("", "v1", "configmaps")


class CountingObserver:
    """Counts requests by verb (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.by_verb: collections.Counter[str] = collections.Counter()  # guarded by _lock
        # "verb:resource code" of the requests not answered 2xx; guarded by _lock
        self.refused: collections.Counter[str] = collections.Counter()

    def request_done(
        self, *, method: str, verb: str, resource: str, code: int, seconds: float
    ) -> None:
        with self._lock:
            self.by_verb[verb] += 1
            self.by_verb[f"{verb}:{resource}"] += 1
            if not 200 <= code < 300:
                self.refused[f"{verb}:{resource} {code}"] += 1

    def count(self, verb: str) -> int:
        """Requests of ``verb`` ("create") or of ``verb:resource`` ("create:pods")."""
        with self._lock:
            return self.by_verb[verb]

    def writes(self) -> dict[str, int]:
        """Every non-read request so far, as ``verb:resource`` -> count."""
        with self._lock:
            return {
                k: v
                for k, v in self.by_verb.items()
                if ":" in k and k.split(":")[0] not in {"get", "list", "watch"}
            }

    def failures(self) -> dict[str, int]:
        """Requests not answered 2xx, as ``verb:resource code`` -> count (0: no answer)."""
        with self._lock:
            return dict(self.refused)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.by_verb)


def retry_through_outage(op: Callable[[], object], *, timeout: float = 90.0) -> None:
    """Run a write until it succeeds, across API server restarts.

    A create whose answer was lost may already exist (409), and a delete may already be done
    (404): both count as success.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            op()
            return
        except Conflict as err:
            if err.already_exists:
                return
            raise
        except NotFound:
            return
        except (ConnectionFailed, ServerError, ApiError) as err:
            if time.monotonic() > deadline:
                raise AssertionError(f"write still failing after {timeout} s: {err}") from err
            time.sleep(0.2)  # the API server is restarting; bounded by the deadline


def server_state(resource: ResourceClient) -> dict[str, str]:
    """key -> resourceVersion of everything the server has, by a fresh consistent list."""
    state: dict[str, str] = {}
    token = ""
    while True:
        page = resource.list(limit=500, continue_token=token, resource_version="")
        for item in page["items"]:
            meta = item["metadata"]
            state[f"{meta['namespace']}/{meta['name']}"] = meta["resourceVersion"]
        token = page["metadata"].get("continue", "")
        if not token:
            return state


def cache_state(informer: SharedInformer) -> dict[str, str]:
    return {
        str(informer.indexer.key_func(obj)): obj["metadata"]["resourceVersion"]
        for obj in informer.indexer.list()
    }
