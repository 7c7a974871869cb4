"""Errors raised by a leader-election lock.

Contract: every failure of a :class:`~leader.lease.Lock` call is a :class:`LockError`, so the
elector needs exactly one ``except`` clause per call. HTTP statuses the elector reacts to have
their own subclass; everything else (other statuses, timeouts, connection failures, unreadable
replies) is a plain ``LockError``. The original exception is chained with ``raise ... from``.
Messages are cut short so that a large reply never floods the log.

Pure values: no I/O, no threads, safe to use from any thread.
"""

from __future__ import annotations

MAX_DETAIL_CHARS = 300


def shorten(text: str, limit: int = MAX_DETAIL_CHARS) -> str:
    """Return ``text`` cut to at most ``limit`` characters, marking the cut."""
    if len(text) <= limit:
        return text
    return text[: limit - 3] + "..."


class LockError(Exception):
    """A lock operation failed; ``status`` is the HTTP status, or ``None`` without a reply."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(shorten(message))
        self.status = status


class NotFound(LockError):
    """The lock object does not exist (HTTP 404)."""


class Conflict(LockError):
    """Someone else changed or created the lock object first (HTTP 409)."""


class Forbidden(LockError):
    """The identity may not read or write the lock object (HTTP 401 or 403)."""


def error_for_status(status: int, message: str) -> LockError:
    """Return the :class:`LockError` subclass instance that matches an HTTP ``status``."""
    if status == 404:
        return NotFound(message, status=status)
    if status == 409:
        return Conflict(message, status=status)
    if status in (401, 403):
        return Forbidden(message, status=status)
    return LockError(message, status=status)
