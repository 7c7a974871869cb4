"""Logging: one line per event, JSON by default (``--log-format text`` for humans).

Every line carries the Kernel key and reconcile id of the reconcile it belongs to (from
:mod:`reconcilers.context`) and the current trace id when tracing is on, so a log line can be
found from a trace and back. ``configure`` runs once at start on the main thread; the
formatter runs on whichever thread logs.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import TextIO

from opentelemetry import trace

from reconcilers import context

_RESERVED = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "kernel",
    "reconcile_id",
    "trace_id",
    "span_id",
}


class ContextFilter(logging.Filter):
    """Adds ``kernel``, ``reconcile_id``, ``trace_id`` and ``span_id`` to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.kernel = getattr(record, "kernel", "") or context.kernel_key.get()
        record.reconcile_id = context.reconcile_id.get()
        span = trace.get_current_span().get_span_context()
        record.trace_id = format(span.trace_id, "032x") if span.is_valid else ""
        record.span_id = format(span.span_id, "016x") if span.is_valid else ""
        return True


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "msg", "kernel", "reconcile_id", "trace_id", …}``."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for field in ("kernel", "reconcile_id", "trace_id", "span_id"):
            value = getattr(record, field, "")
            if value:
                line[field] = value
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                plain = isinstance(value, str | int | float | bool | dict | list | None)
                line[key] = value if plain else str(value)
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, separators=(",", ":"), default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extras = [
            f"{field}={getattr(record, field)}"
            for field in ("kernel", "reconcile_id", "trace_id")
            if getattr(record, field, "")
        ]
        return f"{text} [{' '.join(extras)}]" if extras else text


def configure(*, level: str, fmt: str, stream: TextIO | None = None) -> None:
    """Route every logger to one handler on ``stream`` (stderr) with the chosen format."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.getLogger("urllib3").setLevel(logging.WARNING)
