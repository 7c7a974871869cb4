"""``eventually``: poll a condition with a deadline instead of sleeping "long enough"."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def eventually(
    probe: Callable[[], T | None],
    *,
    timeout: float,
    interval: float = 0.1,
    message: str = "condition not met",
) -> T:
    """Call ``probe`` until it returns a truthy value (returned) or ``timeout`` passes.

    Exceptions from ``probe`` count as "not yet"; the last one is chained on timeout.
    """
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = probe()
        except Exception as err:
            last_error = err
        else:
            if value:
                return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{message} within {timeout:.1f} s") from last_error
        time.sleep(interval)
