"""Per-reconcile logging context: the Kernel key and a reconcile id, set by the worker loop
for the duration of one reconcile (``contextvars``, so each worker thread has its own)."""

from __future__ import annotations

from contextvars import ContextVar

kernel_key: ContextVar[str] = ContextVar("kernel_key", default="")
reconcile_id: ContextVar[str] = ContextVar("reconcile_id", default="")
