"""API errors as exception classes, mapped from HTTP status codes.

Every error raised by :mod:`informers.client` is an :class:`ApiError`; callers branch on the
class (``except Conflict``) instead of on numbers. Messages are cut short so that a large
response body never floods a log line.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

MAX_MESSAGE_CHARS = 300
NAMESPACE_TERMINATING_CAUSE = "NamespaceTerminating"


@dataclass(frozen=True)
class StatusCause:
    """One entry of a ``Status``'s ``details.causes`` (e.g. ``NamespaceTerminating``)."""

    type: str
    message: str = ""
    field: str = ""


class ApiError(Exception):
    """An error answer of the API server, or no answer at all (``status`` 0)."""

    status: int = 0

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        reason: str = "",
        retry_after: float | None = None,
        causes: tuple[StatusCause, ...] = (),
        audit_id: str = "",
        kind: str = "",
    ) -> None:
        super().__init__(message[:MAX_MESSAGE_CHARS])
        if status is not None:
            self.status = status
        self.reason = reason
        # The server's Retry-After in seconds; None when the answer had none.
        self.retry_after = retry_after
        self.causes = causes
        # The API server's Audit-Id of the request (its audit log record), when it answered.
        self.audit_id = audit_id
        # ``details.kind``: the kind of object the error is about (e.g. ``namespaces`` when a
        # create is refused because its namespace does not exist).
        self.kind = kind

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""

    def has_cause(self, cause_type: str) -> bool:
        """Whether the ``Status`` named ``cause_type`` among its causes (apimachinery's
        ``HasStatusCause``)."""
        return any(cause.type == cause_type for cause in self.causes)


class ConnectionFailed(ApiError):
    """The request did not get an HTTP answer (refused, reset, timed out)."""


class BadRequest(ApiError):
    status = 400


class Unauthorized(ApiError):
    status = 401


class Forbidden(ApiError):
    status = 403

    @property
    def namespace_terminating(self) -> bool:
        """A create refused because its namespace is being deleted: retrying cannot help."""
        return self.has_cause(NAMESPACE_TERMINATING_CAUSE)


class NotFound(ApiError):
    status = 404

    @property
    def namespace_missing(self) -> bool:
        """A create refused because its namespace does not exist (any more)."""
        return self.kind == "namespaces"


class Conflict(ApiError):
    """409: an optimistic-concurrency conflict or an object that already exists."""

    status = 409

    @property
    def already_exists(self) -> bool:
        return self.reason == "AlreadyExists"


class Gone(ApiError):
    """410: the requested resourceVersion is too old (compacted)."""

    status = 410


class Invalid(ApiError):
    """422: the object failed validation."""

    status = 422


class TooManyRequests(ApiError):
    """429: throttled; ``retry_after`` holds the server's Retry-After in seconds."""

    status = 429


class ServerError(ApiError):
    """5xx."""

    status = 500


_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    410: Gone,
    422: Invalid,
    429: TooManyRequests,
}


def error_for_status(
    status: int, body: bytes | str | Mapping[str, object] | None, headers: Mapping[str, str]
) -> ApiError:
    """Build the error for an HTTP answer ``status`` with a ``Status`` JSON ``body``."""
    parsed = _parse_status(body)
    cls = _BY_STATUS.get(status, ServerError if status >= 500 else ApiError)
    return cls(
        f"HTTP {status}: {parsed.message}" if parsed.message else f"HTTP {status}",
        status=status,
        reason=parsed.reason,
        retry_after=_retry_after(headers),
        causes=parsed.causes,
        audit_id=_header(headers, "audit-id") or "",
        kind=parsed.kind,
    )


def error_for_status_object(obj: Mapping[str, object]) -> ApiError:
    """Build the error carried by a watch ``ERROR`` event (a ``Status`` object)."""
    code = obj.get("code")
    return error_for_status(code if isinstance(code, int) else 500, obj, {})


@dataclass(frozen=True)
class _ParsedStatus:
    message: str = ""
    reason: str = ""
    causes: tuple[StatusCause, ...] = ()
    kind: str = ""


def _parse_status(body: bytes | str | Mapping[str, object] | None) -> _ParsedStatus:
    if body is None:
        return _ParsedStatus()
    if isinstance(body, Mapping):
        status: object = body
    else:
        try:
            status = json.loads(body)
        except ValueError:
            text = body.decode(errors="replace") if isinstance(body, bytes) else body
            return _ParsedStatus(message=text.strip()[:MAX_MESSAGE_CHARS])
    if not isinstance(status, Mapping):
        return _ParsedStatus()
    message = status.get("message")
    reason = status.get("reason")
    details = status.get("details")
    kind = details.get("kind") if isinstance(details, Mapping) else None
    return _ParsedStatus(
        message=message if isinstance(message, str) else "",
        reason=reason if isinstance(reason, str) else "",
        causes=_causes(details),
        kind=kind if isinstance(kind, str) else "",
    )


def _causes(details: object) -> tuple[StatusCause, ...]:
    if not isinstance(details, Mapping):
        return ()
    causes = details.get("causes")
    if not isinstance(causes, list):
        return ()
    found = []
    for cause in causes:
        if isinstance(cause, Mapping) and isinstance(cause.get("reason"), str):
            found.append(
                StatusCause(
                    type=str(cause["reason"]),
                    message=str(cause.get("message") or "")[:MAX_MESSAGE_CHARS],
                    field=str(cause.get("field") or ""),
                )
            )
    return tuple(found)


def _header(headers: Mapping[str, str], wanted: str) -> str | None:
    for name, value in headers.items():
        if name.lower() == wanted:
            return value
    return None


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """The Retry-After header in seconds (the API server sends whole seconds; an HTTP date
    is not used by it and counts as absent)."""
    value = _header(headers, "retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
