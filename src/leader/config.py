"""Validated timing and identity of one leader election.

Contract: a :class:`LeaderElectionConfig` that exists is valid. The checks are the ones of
client-go's ``NewLeaderElector``: ``lease_duration > renew_deadline > 1.2 * retry_period > 0``
(1.2 is the jitter factor of the acquire loop) and a non-empty identity, lease name and
namespace. A frozen value: safe to share between threads.
"""

from __future__ import annotations

from dataclasses import dataclass

JITTER_FACTOR = 1.2
"""Acquire attempts wait ``retry_period * (1 + random() * JITTER_FACTOR)`` (client-go's value)."""


@dataclass(frozen=True, kw_only=True)
class LeaderElectionConfig:
    """Which Lease to take, who we are, and the timings of acquire, renew and retry (seconds).

    ``lease_duration``: how long followers wait, on their own monotonic clock, after they last
    saw the Lease change before they may take it. ``renew_deadline``: how long the leader keeps
    trying to renew before it gives up leadership. ``retry_period``: the pause between attempts.
    ``release_on_cancel``: on a clean stop, hand the Lease back so that a follower takes over at
    once instead of after ``lease_duration``.
    """

    lease_name: str
    namespace: str
    identity: str
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    release_on_cancel: bool = True

    def __post_init__(self) -> None:
        problems = _problems(self)
        if problems:
            raise ValueError("invalid leader election config: " + "; ".join(problems))


def _problems(config: LeaderElectionConfig) -> list[str]:
    """Return a readable description of every invalid setting of ``config``."""
    problems: list[str] = []
    for field in ("lease_name", "namespace", "identity"):
        if not getattr(config, field).strip():
            problems.append(f"{field} must not be empty")
    for field in ("lease_duration", "renew_deadline", "retry_period"):
        if not getattr(config, field) > 0:
            problems.append(f"{field} must be > 0, got {getattr(config, field)!r}")
    if problems:
        return problems
    if not config.lease_duration > config.renew_deadline:
        problems.append(
            f"lease_duration ({config.lease_duration}) must be greater than "
            f"renew_deadline ({config.renew_deadline})"
        )
    if not config.renew_deadline > JITTER_FACTOR * config.retry_period:
        problems.append(
            f"renew_deadline ({config.renew_deadline}) must be greater than "
            f"{JITTER_FACTOR} x retry_period ({JITTER_FACTOR * config.retry_period:g})"
        )
    return problems
