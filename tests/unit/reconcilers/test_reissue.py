"""ReissueLog: a Pod Warning's repeats are counted on the Kernel even when the cache shows
several at once."""

from __future__ import annotations

from typing import Any

from reconcilers.kernel import ReissueLog


def warning(count: int, uid: str = "e1") -> dict[str, Any]:
    return {"metadata": {"uid": uid}, "count": count, "type": "Warning"}


def test_repeats_seen_at_once_are_all_counted() -> None:
    log = ReissueLog()
    assert log.new_occurrences(warning(1)) == 1
    log.mark(warning(1))
    assert log.is_done(warning(1))
    assert log.new_occurrences(warning(17)) == 16  # the informer showed count 17 at once
    log.mark(warning(17))
    assert log.new_occurrences(warning(30)) == 13
    log.mark(warning(30))
    assert log.is_done(warning(30))


def test_an_older_view_adds_nothing_and_events_are_apart() -> None:
    log = ReissueLog()
    log.mark(warning(5))
    assert log.new_occurrences(warning(3)) == 0
    log.mark(warning(3))  # never goes back
    assert log.new_occurrences(warning(6)) == 1
    assert log.new_occurrences(warning(2, uid="e2")) == 2
