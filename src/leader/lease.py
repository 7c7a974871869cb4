"""The election record and the lock that stores it in a ``coordination.k8s.io/v1`` Lease.

Contract (after client-go ``resourcelock``): a :class:`Lock` reads the current
:class:`LeaderElectionRecord` together with the ``resourceVersion`` it was read at, creates it,
or replaces it *only if* nobody changed it since that version (optimistic concurrency: the
server answers 409 Conflict, raised as :class:`~leader.errors.Conflict`, when someone else
won). Every call takes a ``timeout`` in seconds and raises :class:`~leader.errors.LockError`
on any failure. ``create`` and ``update`` return the new ``resourceVersion``.

:class:`LeaseLock` speaks raw JSON through ``ApiClient.param_serialize``/``call_api``: no
generated model objects are built or kept, only :class:`LeaderElectionRecord` values. An update
is a JSON merge patch that carries the ``resourceVersion`` it read as a precondition, so the
Lease's labels, annotations and spec fields this package does not know survive.

Threads: a :class:`LeaseLock` keeps no state of its own; it may be called from any thread as
far as the ``ApiClient`` allows (its connection pool is thread-safe). Records are frozen.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, TypedDict, cast

import urllib3
from kubernetes.client.exceptions import OpenApiException

from leader.errors import LockError, error_for_status, shorten

API_PATH = "/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
_JSON = "application/json"
_MERGE_PATCH = "application/merge-patch+json"


class LeaseSpecJSON(TypedDict, total=False):
    """``spec`` of a ``coordination.k8s.io/v1`` Lease as it travels on the wire."""

    holderIdentity: str
    leaseDurationSeconds: int
    acquireTime: str | None
    renewTime: str | None
    leaseTransitions: int


class LeaseMetaJSON(TypedDict, total=False):
    """The part of a Lease's ``metadata`` this package reads or writes."""

    name: str
    namespace: str
    resourceVersion: str


class LeaseJSON(TypedDict, total=False):
    """A Lease object (or a merge patch of one) as JSON."""

    apiVersion: str
    kind: str
    metadata: LeaseMetaJSON
    spec: LeaseSpecJSON


@dataclass(frozen=True, kw_only=True)
class LeaderElectionRecord:
    """Who holds the lock, for how long they claim it, and since when (wall-clock times).

    An empty ``holder_identity`` means nobody holds it (for example after a release). The
    times are informational: expiry is judged on the observer's monotonic clock, never here.
    """

    holder_identity: str
    lease_duration_seconds: int
    acquire_time: datetime | None
    renew_time: datetime | None
    leader_transitions: int


class Lock(Protocol):
    """Storage of one :class:`LeaderElectionRecord` with compare-and-swap updates."""

    def get(self, *, timeout: float) -> tuple[LeaderElectionRecord, str] | None:
        """Return the record and its ``resourceVersion``, or ``None`` if there is no lock."""
        ...

    def create(self, record: LeaderElectionRecord, *, timeout: float) -> str:
        """Create the lock holding ``record``; raise ``Conflict`` if it exists already."""
        ...

    def update(self, record: LeaderElectionRecord, resource_version: str, *, timeout: float) -> str:
        """Replace the record if it is still at ``resource_version``, else raise ``Conflict``."""
        ...

    def describe(self) -> str:
        """A short human-readable name of the lock, for logs (``namespace/name``)."""
        ...


def format_micro_time(value: datetime | None) -> str | None:
    """Render a Kubernetes ``MicroTime`` (RFC 3339, microseconds, UTC, ``Z``)."""
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_micro_time(value: object) -> datetime | None:
    """Parse a ``MicroTime`` or ``Time``; ``None`` when absent or unreadable (never raises)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def record_to_spec(record: LeaderElectionRecord) -> LeaseSpecJSON:
    """The Lease ``spec`` that stores ``record``."""
    return {
        "holderIdentity": record.holder_identity,
        "leaseDurationSeconds": record.lease_duration_seconds,
        "acquireTime": format_micro_time(record.acquire_time),
        "renewTime": format_micro_time(record.renew_time),
        "leaseTransitions": record.leader_transitions,
    }


def spec_to_record(spec: LeaseSpecJSON) -> LeaderElectionRecord:
    """The record stored in a Lease ``spec``; missing fields read as empty or zero."""
    return LeaderElectionRecord(
        holder_identity=spec.get("holderIdentity") or "",
        lease_duration_seconds=int(spec.get("leaseDurationSeconds") or 0),
        acquire_time=parse_micro_time(spec.get("acquireTime")),
        renew_time=parse_micro_time(spec.get("renewTime")),
        leader_transitions=int(spec.get("leaseTransitions") or 0),
    )


class ApiClientLike(Protocol):
    """The two methods of ``kubernetes.client.ApiClient`` that :class:`LeaseLock` uses."""

    def param_serialize(
        self,
        *,
        method: str,
        resource_path: str,
        path_params: dict[str, str],
        header_params: dict[str, str],
        body: Any,
        auth_settings: list[str],
    ) -> tuple[Any, Any, Any, Any, Any]:
        """Return ``(method, url, headers, body, post_params)`` with host and credentials."""
        ...

    def call_api(
        self,
        *,
        method: Any,
        url: Any,
        header_params: Any,
        body: Any,
        post_params: Any,
        _request_timeout: float,
    ) -> Any:
        """Send the request; return a response with ``status`` and ``read()``."""
        ...


class LeaseLock:
    """A :class:`Lock` on the Lease ``namespace/name``, through a ``kubernetes.client.ApiClient``.

    The ``ApiClient`` is used only for its connection, authentication and serialisation
    (``param_serialize`` and ``call_api``); replies are parsed with :mod:`json`.
    """

    def __init__(self, *, api_client: ApiClientLike, namespace: str, name: str) -> None:
        self._api = api_client
        self._namespace = namespace
        self._name = name

    def describe(self) -> str:
        return f"{self._namespace}/{self._name}"

    def get(self, *, timeout: float) -> tuple[LeaderElectionRecord, str] | None:
        try:
            lease = self._call("GET", name=self._name, body=None, timeout=timeout)
        except LockError as err:
            if err.status == 404:
                return None
            raise
        return spec_to_record(lease.get("spec", {})), _resource_version(lease)

    def create(self, record: LeaderElectionRecord, *, timeout: float) -> str:
        body: LeaseJSON = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self._name, "namespace": self._namespace},
            "spec": record_to_spec(record),
        }
        return _resource_version(self._call("POST", name=None, body=body, timeout=timeout))

    def update(self, record: LeaderElectionRecord, resource_version: str, *, timeout: float) -> str:
        # A merge patch that names a resourceVersion is rejected with 409 when the object has
        # moved on since: the same guarantee as a PUT of the whole object, minus clobbering
        # the fields we do not own. An empty version would remove the precondition: refuse it.
        if not resource_version:
            raise LockError(f"update of lease {self.describe()} without a resourceVersion")
        patch: LeaseJSON = {
            "metadata": {"resourceVersion": resource_version},
            "spec": record_to_spec(record),
        }
        return _resource_version(self._call("PATCH", name=self._name, body=patch, timeout=timeout))

    def _call(
        self, method: str, *, name: str | None, body: LeaseJSON | None, timeout: float
    ) -> LeaseJSON:
        """Send one request and return the Lease in the reply; map every failure to LockError."""
        path = API_PATH + ("/{name}" if name is not None else "")
        path_params = {"namespace": self._namespace}
        if name is not None:
            path_params["name"] = name
        headers = {"Accept": _JSON}
        if body is not None:
            headers["Content-Type"] = _MERGE_PATCH if method == "PATCH" else _JSON
        what = f"{method} lease {self.describe()}"
        try:
            verb, url, header_params, payload, post_params = self._api.param_serialize(
                method=method,
                resource_path=path,
                path_params=path_params,
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
            )
            response = self._api.call_api(
                method=verb,
                url=url,
                header_params=header_params,
                body=payload,
                post_params=post_params,
                _request_timeout=max(timeout, 0.001),
            )
            data = response.read()
            status = int(response.status)
        except (OpenApiException, urllib3.exceptions.HTTPError, OSError) as err:
            raise LockError(f"{what}: {type(err).__name__}: {err}") from err
        text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else str(data)
        if not 200 <= status <= 299:
            raise error_for_status(status, f"{what}: HTTP {status}: {_status_message(text)}")
        try:
            lease = json.loads(text)
        except ValueError as err:
            raise LockError(f"{what}: unreadable reply: {shorten(text)}", status=status) from err
        if not isinstance(lease, dict):
            raise LockError(f"{what}: reply is not an object: {shorten(text)}", status=status)
        return cast(LeaseJSON, lease)


def _resource_version(lease: LeaseJSON) -> str:
    version = lease.get("metadata", {}).get("resourceVersion", "")
    if not version:
        # Without it the next update would carry no precondition and could clobber a winner.
        raise LockError("the Lease in the reply has no metadata.resourceVersion")
    return version


def _status_message(text: str) -> str:
    """The ``message`` of a ``metav1.Status`` reply, else the (shortened) raw text."""
    try:
        status = json.loads(text)
    except ValueError:
        return shorten(text)
    if isinstance(status, dict) and isinstance(status.get("message"), str):
        return shorten(status["message"])
    return shorten(text)
