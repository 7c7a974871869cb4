"""A thin REST transport over the official client's connection pool, returning plain JSON.

The ``kubernetes`` package's generated models are Pydantic objects: several times the memory
of the parsed JSON and far slower to build. This module reuses only its configuration,
authentication (including token refresh) and urllib3 pool, and gives callers ``dict`` bodies
and a line-by-line watch stream.

A request answered ``429 Too Many Requests`` (the API server's Priority and Fairness) is sent
again after the answer's ``Retry-After``, as :class:`~informers.retry_after.RetryAfterPolicy`
decides (bounded in count and total wait); the wait ends early, with the error raised, when
the client's ``interrupt`` event is set (shutdown). Watches are not retried here: the
reflector owns their lifecycle. There is no client-side rate limit unless a ``Throttle`` is
given (current practice: the server's APF protects it).

Thread-safety: a :class:`RestClient` may be shared by all threads (urllib3's pool is
thread-safe). A :class:`WatchStream` is consumed by one thread; ``close()`` may be called from
any thread to interrupt a blocked read.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import urllib3
from kubernetes.client import ApiClient

from informers.errors import ConnectionFailed, TooManyRequests, error_for_status
from informers.retry_after import RetryAfterPolicy

log = logging.getLogger(__name__)

JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
AUDIT_ID_HEADER = "Audit-Id"  # the API server names its audit record of each request
DEFAULT_TIMEOUT_SECONDS = 30.0
CONNECT_TIMEOUT_SECONDS = 10.0

Query = Sequence[tuple[str, str]]


class RequestObserver(Protocol):
    """Told about every finished request (metrics, tracing). Called on the caller's thread."""

    def request_done(
        self, *, method: str, verb: str, resource: str, code: int, seconds: float
    ) -> None: ...


class Throttle(Protocol):
    """Client-side rate limit (QPS/burst): ``wait()`` blocks until a request may go out."""

    def wait(self) -> None: ...


@dataclass(frozen=True)
class RequestInfo:
    """What a request is, for observers: ``verb`` is list/watch/get/create/patch/…"""

    verb: str
    resource: str


class RestClient:
    """JSON requests against the API server described by an ``ApiClient``'s configuration."""

    def __init__(
        self,
        api_client: ApiClient,
        *,
        observer: RequestObserver | None = None,
        throttle: Throttle | None = None,
        user_agent: str = "informers/0.1",
        retry: RetryAfterPolicy | None = None,
        interrupt: threading.Event | None = None,
    ) -> None:
        self._api = api_client
        self._pool = api_client.rest_client.pool_manager
        self._observer = observer
        self._throttle = throttle
        self._user_agent = user_agent
        self._retry = retry if retry is not None else RetryAfterPolicy()
        # Set by the owner at shutdown: ends a Retry-After wait at once (the 429 is raised).
        self._interrupt = interrupt if interrupt is not None else threading.Event()

    @property
    def host(self) -> str:
        return str(self._api.configuration.host)

    def request(
        self,
        method: str,
        path: str,
        *,
        info: RequestInfo,
        query: Query = (),
        body: object = None,
        content_type: str = JSON,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> Any:
        """Send one request and return the parsed JSON answer; raise :class:`ApiError`.

        A ``429`` answer is retried after its ``Retry-After`` (see the module docstring).
        """
        retries, waited, previous = 0, 0.0, ""
        while True:
            try:
                response = self._send(
                    method,
                    path,
                    info=info,
                    query=query,
                    body=body,
                    content_type=content_type,
                    timeout=urllib3.Timeout(connect=CONNECT_TIMEOUT_SECONDS, read=timeout),
                )
            except TooManyRequests as err:
                wait = self._retry.next_wait(
                    retry_after=err.retry_after, retries=retries, waited=waited
                )
                log.debug(
                    "throttled by the API server",
                    extra={
                        "method": method,
                        "path": path,
                        "retry_after": err.retry_after,
                        "audit_id": err.audit_id,
                        "previous_audit_id": previous,
                        "wait": wait,
                        "retries": retries,
                    },
                )
                if wait is None or self._interrupt.wait(wait):
                    raise
                retries, waited, previous = retries + 1, waited + wait, err.audit_id
                continue
            if retries:
                log.debug(
                    "retried request answered",
                    extra={
                        "method": method,
                        "path": path,
                        "code": response.status,
                        "audit_id": response.headers.get(AUDIT_ID_HEADER, ""),
                        "previous_audit_id": previous,
                    },
                )
            break
        try:
            data = response.data
        finally:
            response.release_conn()
        return json.loads(data) if data else None

    def watch(
        self, path: str, *, info: RequestInfo, query: Query, read_timeout: float
    ) -> WatchStream:
        """Open a watch; each read may block at most ``read_timeout`` seconds."""
        response = self._send(
            "GET",
            path,
            info=info,
            query=[*query, ("watch", "true")],
            body=None,
            content_type=JSON,
            timeout=urllib3.Timeout(connect=CONNECT_TIMEOUT_SECONDS, read=read_timeout),
        )
        return WatchStream(response)

    def _send(
        self,
        method: str,
        path: str,
        *,
        info: RequestInfo,
        query: Query,
        body: object,
        content_type: str,
        timeout: urllib3.Timeout,
    ) -> urllib3.BaseHTTPResponse:
        headers = {"Accept": JSON, "User-Agent": self._user_agent}
        payload: bytes | None = None
        if body is not None:
            headers["Content-Type"] = content_type
            payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        _, url, headers, _, _ = self._api.param_serialize(
            method=method,
            resource_path=path,
            query_params=list(query) or None,
            header_params=headers,
            auth_settings=["BearerToken"],
        )
        if self._throttle is not None:
            self._throttle.wait()
        started = time.monotonic()
        code = 0
        try:
            response = self._pool.request(
                method,
                url,
                body=payload,
                headers=headers,
                timeout=timeout,
                retries=False,
                preload_content=False,
            )
            code = response.status
        except (urllib3.exceptions.HTTPError, OSError) as err:
            raise ConnectionFailed(f"{method} {path}: {err}", reason=type(err).__name__) from err
        finally:
            if self._observer is not None:
                self._observer.request_done(
                    method=method,
                    verb=info.verb,
                    resource=info.resource,
                    code=code,
                    seconds=time.monotonic() - started,
                )
        if not 200 <= code < 300:
            try:
                data = response.data
            finally:
                response.release_conn()
            raise error_for_status(code, data, dict(response.headers))
        return response


@dataclass(frozen=True)
class WatchEvent:
    """One watch event: ``type`` is ADDED, MODIFIED, DELETED, BOOKMARK or ERROR."""

    type: str
    object: dict[str, Any]


class WatchStream:
    """Iterates the events of one watch response until the server ends it.

    Raises :class:`ConnectionFailed` when the connection breaks or a read times out.
    """

    def __init__(self, response: urllib3.BaseHTTPResponse) -> None:
        self._response = response
        self._closed = False

    def __iter__(self) -> Iterator[WatchEvent]:
        try:
            for line in self._response:
                if not line.strip():
                    continue
                raw = json.loads(line)
                yield WatchEvent(type=raw["type"], object=raw["object"])
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as err:
            if self._closed:
                return
            self._closed = True  # urllib3 has already dropped the broken connection
            raise ConnectionFailed(
                f"watch stream broken: {err}", reason=type(err).__name__
            ) from err
        if not self._closed:
            self._closed = True
            self._response.release_conn()  # ended by the server: the connection is reusable

    def close(self) -> None:
        """End the stream, unblocking a reader on another thread; idempotent."""
        if self._closed:
            return
        self._closed = True
        shutdown = getattr(self._response, "shutdown", None)
        if shutdown is not None:
            # Unblocks a reader on another thread; fails harmlessly when urllib3 has already
            # released the connection (the stream ended meanwhile).
            with contextlib.suppress(RuntimeError, ValueError, OSError):
                shutdown()
        self._response.close()

    def __enter__(self) -> WatchStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
