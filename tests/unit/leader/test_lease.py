"""Pure parts of LeaseLock: time formats, record <-> spec, refusals before any request.

The lock's requests themselves are tested against the real API server in
``tests/integration/test_leader_election.py``.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from kubernetes.client import ApiClient, Configuration

from leader.errors import LockError
from leader.lease import (
    LeaderElectionRecord,
    LeaseLock,
    format_micro_time,
    parse_micro_time,
    record_to_spec,
    spec_to_record,
)

T0 = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
RECORD = LeaderElectionRecord(
    holder_identity="me",
    lease_duration_seconds=15,
    acquire_time=T0,
    renew_time=T0,
    leader_transitions=2,
)


def test_micro_time_round_trip() -> None:
    text = format_micro_time(T0)
    assert text == "2024-05-01T12:00:00.123456Z"
    assert parse_micro_time(text) == T0
    assert parse_micro_time("2024-05-01T12:00:00Z") == T0.replace(microsecond=0)
    assert parse_micro_time("not a time") is None
    assert parse_micro_time(None) is None


def test_record_spec_round_trip_and_missing_fields() -> None:
    assert record_to_spec(RECORD) == {
        "holderIdentity": "me",
        "leaseDurationSeconds": 15,
        "acquireTime": "2024-05-01T12:00:00.123456Z",
        "renewTime": "2024-05-01T12:00:00.123456Z",
        "leaseTransitions": 2,
    }
    assert spec_to_record(record_to_spec(RECORD)) == RECORD
    assert spec_to_record({}) == LeaderElectionRecord(
        holder_identity="",
        lease_duration_seconds=0,
        acquire_time=None,
        renew_time=None,
        leader_transitions=0,
    )


def unreachable_lock() -> tuple[ApiClient, LeaseLock]:
    config = Configuration(host="http://127.0.0.1:1")  # nothing listens on port 1
    config.retries = 0
    client = ApiClient(config)
    return client, LeaseLock(api_client=client, namespace="ns", name="lock")


def test_update_without_a_version_is_refused_before_any_request() -> None:
    client, lock = unreachable_lock()
    try:
        with pytest.raises(LockError, match="without a resourceVersion") as info:
            lock.update(RECORD, "", timeout=2)
    finally:
        client.close()  # type: ignore[no-untyped-call]
    assert info.value.__cause__ is None  # refused, not a failed connection


def test_transport_errors_are_lock_errors_chained_to_the_cause() -> None:
    client, lock = unreachable_lock()
    try:
        with pytest.raises(LockError, match="GET lease ns/lock") as info:
            lock.get(timeout=2)
    finally:
        client.close()  # type: ignore[no-untyped-call]
    assert info.value.status is None
    assert info.value.__cause__ is not None
