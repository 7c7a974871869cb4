"""Validation of LeaderElectionConfig (client-go NewLeaderElector's checks)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from leader.config import LeaderElectionConfig

BASE: dict[str, Any] = {"lease_name": "lock", "namespace": "ns", "identity": "me"}


def make(**overrides: Any) -> LeaderElectionConfig:
    return LeaderElectionConfig(**{**BASE, **overrides})


def test_defaults_are_client_go_defaults() -> None:
    config = make()
    assert (config.lease_duration, config.renew_deadline, config.retry_period) == (15.0, 10.0, 2.0)
    assert config.release_on_cancel is True


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"lease_duration": 10.0}, "lease_duration (10.0) must be greater than renew_deadline"),
        ({"lease_duration": 9.0}, "lease_duration (9.0) must be greater than renew_deadline"),
        ({"retry_period": 10.0 / 1.2}, "must be greater than 1.2 x retry_period"),
        ({"retry_period": 9.0}, "must be greater than 1.2 x retry_period"),
        ({"lease_duration": 0.0}, "lease_duration must be > 0"),
        ({"renew_deadline": -1.0}, "renew_deadline must be > 0"),
        ({"retry_period": 0.0}, "retry_period must be > 0"),
        ({"retry_period": float("nan")}, "retry_period must be > 0"),
        ({"identity": ""}, "identity must not be empty"),
        ({"identity": "   "}, "identity must not be empty"),
        ({"lease_name": ""}, "lease_name must not be empty"),
        ({"namespace": ""}, "namespace must not be empty"),
    ],
    ids=[
        "lease-equals-renew",
        "lease-below-renew",
        "renew-equals-1.2-retry",
        "renew-below-1.2-retry",
        "zero-lease",
        "negative-renew",
        "zero-retry",
        "nan-retry",
        "empty-identity",
        "blank-identity",
        "empty-lease-name",
        "empty-namespace",
    ],
)
def test_invalid_config_is_rejected(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match="invalid leader election config") as info:
        make(**overrides)
    assert message in str(info.value)


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"lease_duration": 3.0, "renew_deadline": 2.0, "retry_period": 0.5},
        {"lease_duration": 10.1, "renew_deadline": 10.0, "retry_period": 8.0},
    ],
    ids=["defaults", "short-test-timings", "tight-but-valid"],
)
def test_valid_config_is_accepted(overrides: dict[str, Any]) -> None:
    make(**overrides)


def test_all_problems_are_reported_at_once() -> None:
    with pytest.raises(ValueError, match="identity must not be empty") as info:
        make(identity="", retry_period=0.0)
    assert "retry_period must be > 0" in str(info.value)


def test_config_is_frozen() -> None:
    config = make()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.identity = "other"  # type: ignore[misc]
