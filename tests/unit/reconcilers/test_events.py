"""Unit tests of ``EventRecorder``'s correlation (client-go's EventCorrelator): repeats of one
Event become count updates of it, at most one write per series per interval, and Events in a
namespace being deleted are not sent. A fake writer records the requests; a fake monotonic
clock drives the interval; without ``start()`` the recorder writes on the caller's thread."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from informers.errors import Forbidden, NotFound, error_for_status
from reconcilers.events import EventRecorder
from reconcilers.terminating import TerminatingNamespaces

INTERVAL = 10.0


class Writer:
    """Records ``create``/``patch`` calls; ``fail`` makes the next calls raise."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.fail: list[Exception] = []

    def create(self, body: Mapping[str, Any], *, namespace: str | None = None) -> Any:
        self.calls.append(("create", str(namespace), dict(body)))
        if self.fail:
            raise self.fail.pop(0)
        return dict(body)

    def patch(self, name: str, patch: Mapping[str, Any], *, namespace: str | None = None) -> Any:
        self.calls.append(("patch", f"{namespace}/{name}", dict(patch)))
        if self.fail:
            raise self.fail.pop(0)
        return {}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def kernel(name: str = "k1", namespace: str = "ns") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}"}}


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def writer() -> Writer:
    return Writer()


@pytest.fixture
def recorder(writer: Writer, clock: Clock) -> EventRecorder:
    return EventRecorder(
        writer,
        instance="test",
        wall_clock=lambda: datetime(2026, 12, 2, tzinfo=UTC),
        monotonic=clock,
        update_interval=INTERVAL,
    )


def warn(recorder: EventRecorder, message: str = "Back-off pulling image", **kw: str) -> None:
    recorder.record(kernel(**kw), type_="Warning", reason="ImagePullBackOff", message=message)


def test_the_first_occurrence_is_created_at_once(recorder: EventRecorder, writer: Writer) -> None:
    warn(recorder)

    ((verb, namespace, body),) = writer.calls
    assert (verb, namespace) == ("create", "ns")
    assert body["count"] == 1
    assert body["involvedObject"]["name"] == "k1"
    assert body["reason"] == "ImagePullBackOff"


def test_a_storm_of_repeats_costs_one_count_update_per_interval(
    recorder: EventRecorder, writer: Writer, clock: Clock
) -> None:
    warn(recorder)
    name = writer.calls[0][2]["metadata"]["name"]
    for _ in range(500):
        warn(recorder)
        clock.now += 0.01  # 500 repeats within 5 s
    assert len(writer.calls) == 1  # nothing due before the interval

    clock.now += INTERVAL
    warn(recorder)  # one more; the update is due now and carries every repeat

    assert writer.calls[1:] == [
        ("patch", f"ns/{name}", {"count": 502, "lastTimestamp": "2026-12-02T00:00:00Z"})
    ]


def test_different_messages_are_different_series(recorder: EventRecorder, writer: Writer) -> None:
    warn(recorder, "one")
    warn(recorder, "two")
    warn(recorder, "one", name="k2")

    assert [call[0] for call in writer.calls] == ["create", "create", "create"]


def test_a_series_whose_event_is_gone_starts_a_new_event(
    recorder: EventRecorder, writer: Writer, clock: Clock
) -> None:
    warn(recorder)
    clock.now += INTERVAL
    writer.fail.append(NotFound("HTTP 404: events not found"))
    warn(recorder)

    assert [call[0] for call in writer.calls] == ["create", "patch", "create"]
    assert writer.calls[2][2]["count"] == 2


def test_events_in_a_terminating_namespace_are_dropped_and_remembered(writer: Writer) -> None:
    terminating = TerminatingNamespaces()
    recorder = EventRecorder(writer, instance="test", terminating=terminating)
    status = {
        "reason": "Forbidden",
        "message": "unable to create new content in namespace ns because it is being terminated",
        "details": {"causes": [{"reason": "NamespaceTerminating"}]},
    }
    refusal = error_for_status(403, json.dumps(status), {})
    assert isinstance(refusal, Forbidden)
    writer.fail.append(refusal)

    warn(recorder)
    warn(recorder, "another")
    warn(recorder, name="k2")

    assert len(writer.calls) == 1  # the one refused create; nothing more is sent
    assert "ns" in terminating


class GatedWriter(Writer):
    """A writer whose first call waits until ``gate`` is set (the recorder thread is busy)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.entered = threading.Event()

    def create(self, body: Mapping[str, Any], *, namespace: str | None = None) -> Any:
        self.entered.set()
        assert self.gate.wait(5.0)
        return super().create(body, namespace=namespace)


def test_stop_flushes_pending_count_updates(clock: Clock) -> None:
    writer = GatedWriter()
    recorder = EventRecorder(writer, instance="test", monotonic=clock, update_interval=INTERVAL)
    recorder.start()
    try:
        warn(recorder)
        assert writer.entered.wait(5.0)
        warn(recorder)  # while the create is in flight: an update due after the interval
        writer.gate.set()
    finally:
        recorder.stop()

    assert [(call[0], call[2].get("count")) for call in writer.calls] == [
        ("create", 1),
        ("patch", 2),
    ]


def test_a_full_buffer_drops_the_oldest_unwritten(clock: Clock) -> None:
    writer = GatedWriter()
    recorder = EventRecorder(writer, instance="test", monotonic=clock, buffer_size=2)
    recorder.start()
    try:
        warn(recorder, "in flight")
        assert writer.entered.wait(5.0)
        for n in range(3):
            warn(recorder, f"message {n}")
        writer.gate.set()
    finally:
        recorder.stop()

    assert recorder.dropped == 1
    assert [call[2]["message"] for call in writer.calls] == ["in flight", "message 1", "message 2"]


def test_only_the_series_used_last_are_remembered(writer: Writer, clock: Clock) -> None:
    recorder = EventRecorder(writer, instance="test", monotonic=clock, max_series=2)
    for n in range(3):
        warn(recorder, f"message {n}")
    clock.now += INTERVAL
    warn(recorder, "message 2")  # remembered: a count update
    warn(recorder, "message 0")  # forgotten (least recently used): a new Event

    assert [(call[0], call[2].get("count")) for call in writer.calls[3:]] == [
        ("patch", 2),
        ("create", 1),
    ]
