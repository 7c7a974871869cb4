"""API errors as exception classes, mapped from HTTP status codes.

Every error raised by :mod:`informers.client` is an :class:`ApiError`; callers branch on the
class (``except Conflict``) instead of on numbers. Messages are cut short so that a large
response body never floods a log line.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

MAX_MESSAGE_CHARS = 300


class ApiError(Exception):
    """An error answer of the API server, or no answer at all (``status`` 0)."""

    status: int = 0

    def __init__(
        self, message: str, *, status: int | None = None, reason: str = "", retry_after: float = 0.0
    ) -> None:
        super().__init__(message[:MAX_MESSAGE_CHARS])
        if status is not None:
            self.status = status
        self.reason = reason
        self.retry_after = retry_after

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class ConnectionFailed(ApiError):
    """The request did not get an HTTP answer (refused, reset, timed out)."""


class BadRequest(ApiError):
    status = 400


class Unauthorized(ApiError):
    status = 401


class Forbidden(ApiError):
    status = 403


class NotFound(ApiError):
    status = 404


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
    message, reason = _status_message(body)
    cls = _BY_STATUS.get(status, ServerError if status >= 500 else ApiError)
    retry_after = _retry_after(headers)
    return cls(
        f"HTTP {status}: {message}" if message else f"HTTP {status}",
        status=status,
        reason=reason,
        retry_after=retry_after,
    )


def error_for_status_object(obj: Mapping[str, object]) -> ApiError:
    """Build the error carried by a watch ``ERROR`` event (a ``Status`` object)."""
    code = obj.get("code")
    return error_for_status(code if isinstance(code, int) else 500, obj, {})


def _status_message(body: bytes | str | Mapping[str, object] | None) -> tuple[str, str]:
    if body is None:
        return "", ""
    if isinstance(body, Mapping):
        status = body
    else:
        try:
            status = json.loads(body)
        except ValueError:
            text = body.decode(errors="replace") if isinstance(body, bytes) else body
            return text.strip()[:MAX_MESSAGE_CHARS], ""
    if not isinstance(status, Mapping):
        return "", ""
    message = status.get("message")
    reason = status.get("reason")
    return (
        message if isinstance(message, str) else "",
        reason if isinstance(reason, str) else "",
    )


def _retry_after(headers: Mapping[str, str]) -> float:
    for name, value in headers.items():
        if name.lower() == "retry-after":
            try:
                return max(0.0, float(value))
            except ValueError:
                return 0.0
    return 0.0
