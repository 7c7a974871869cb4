"""The local node's pure parts, without a cluster: the loopback address pool and the status
comparison that keeps the node from writing an unchanged status twice."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from localnode.images import pull_failure, registry_host
from localnode.ipam import AddressPool, PoolExhausted, loopback_usable
from localnode.podstatus import needs_write, running_status
from localnode.scheduling import unschedulable


def test_pool_hands_out_distinct_addresses_next_fit_and_wraps() -> None:
    pool = AddressPool("127.0.0.253", "127.0.1.2")  # .253 .254 (.255 .0 skipped) .1 .2
    got = [pool.allocate() for _ in range(4)]
    assert got == ["127.0.0.253", "127.0.0.254", "127.0.1.1", "127.0.1.2"]
    with pytest.raises(PoolExhausted):
        pool.allocate()
    pool.release("127.0.0.254")
    assert pool.allocate() == "127.0.0.254"  # the only free one, after a wrap
    pool.release("127.0.0.253")
    pool.release("127.0.1.1")
    assert pool.allocate() == "127.0.1.1"  # next-fit: after the last one handed out


def test_pool_reserve_and_concurrent_allocation() -> None:
    pool = AddressPool()
    assert pool.reserve("127.0.0.9")
    assert not pool.reserve("127.0.0.9")  # already held
    assert not pool.reserve("127.0.0.1")  # the host's address is not in the range
    assert not pool.reserve("10.0.0.1")
    with ThreadPoolExecutor(8) as executor:
        addresses = list(executor.map(lambda _: pool.allocate(), range(2000)))
    assert len(set(addresses)) == 2000
    assert "127.0.0.9" not in addresses
    assert pool.held() == 2001


def test_loopback_addresses_are_usable_here() -> None:
    assert loopback_usable("127.0.0.2")
    assert loopback_usable("127.0.255.254")


def test_needs_write_ignores_server_added_fields_and_empty_values() -> None:
    pod = {"metadata": {"name": "k"}, "spec": {"containers": [{"name": "k", "image": "i"}]}}
    desired = running_status(
        pod,
        pod_ip="127.0.0.2",
        start_time="2026-01-01T00:00:00Z",
        started_at="2026-01-01T00:00:01Z",
        ready_since=None,
        container_id="localnode://42",
    )
    assert needs_write(None, desired)
    stored = {**desired, "qosClass": "BestEffort"}
    stored["containerStatuses"] = [
        {**desired["containerStatuses"][0], "lastState": {}, "volumeMounts": []}
    ]
    stored["conditions"] = [{**c, "lastProbeTime": None} for c in desired["conditions"]]
    assert not needs_write(stored, desired)
    ready = running_status(
        pod,
        pod_ip="127.0.0.2",
        start_time="2026-01-01T00:00:00Z",
        started_at="2026-01-01T00:00:01Z",
        ready_since="2026-01-01T00:00:02Z",
        container_id="localnode://42",
    )
    assert needs_write(stored, ready)


@pytest.mark.parametrize(
    ("image", "host"),
    [
        ("python:3.11-slim", ""),
        ("elyra/kernel-py:3.2.3", ""),
        ("quay.io/jupyter/base-notebook", "quay.io"),
        ("localhost:5000/kernel", "localhost"),
        ("registry.invalid:443/team/kernel@sha256:abc", "registry.invalid"),
    ],
)
def test_registry_host(image: str, host: str) -> None:
    assert registry_host(image) == host


def test_only_unresolvable_registries_fail_to_pull() -> None:
    assert pull_failure("elyra/kernel-py:3.2.3") is None
    assert pull_failure("quay.io/jupyter/base-notebook") is None
    failure = pull_failure("registry.invalid/kernel-py:1")
    assert failure is not None and "lookup registry.invalid: no such host" in failure


def test_node_selector_must_match_the_node_labels() -> None:
    labels = {"kubernetes.io/os": "linux", "kubernetes.io/hostname": "n"}

    def pod(selector: dict[str, str] | None) -> dict[str, object]:
        return {"spec": {"nodeSelector": selector} if selector is not None else {}}

    assert unschedulable(pod(None), labels) is None
    assert unschedulable(pod({"kubernetes.io/os": "linux"}), labels) is None
    assert unschedulable(pod({"kubernetes.io/os": "windows"}), labels) is not None
    assert unschedulable(pod({"gpu": "yes"}), labels) is not None
