"""The outcome of one reconcile, as a value (after controller-runtime's ``reconcile.Result``
and ``TerminalError``). Only the worker loop acts on it: forget, requeue after a delay, or
retry with rate-limited backoff."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Result:
    """Done; with ``requeue_after``, look again after that many seconds."""

    requeue_after: float | None = None


DONE = Result()


class TransientError(Exception):
    """Worth retrying with backoff (API unavailable, conflicts, throttling)."""


class TerminalError(Exception):
    """Retrying cannot help until the input changes; the Kernel's status says why."""
