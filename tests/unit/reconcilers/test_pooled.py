"""Unit tests of the pure parts of warm pools (SPEC §13): standby Pods, claims, activation
requests and tokens, the choice of a Kernel's Pod, backoff and in-flight bookkeeping, and what
``desired_state`` decides for a Kernel that names a pool."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from informers import freeze, thaw
from reconcilers.activation import ActivationRequest, activation_token
from reconcilers.desired import Observed, desired_state
from reconcilers.kernel import choose_pod, kernel_pod_index, pool_index, spread
from reconcilers.model import DEFAULT_PORTS, Fresh, KeyMode, ReconcileSettings
from reconcilers.pool import InFlight, StandbyBackoff, standby_selector
from reconcilers.pooled import (
    activation_of,
    build_activation_secret,
    build_standby_pod,
    claim_patch,
    idle_candidates,
    standby_pod_name,
    with_activation,
    with_template,
)

NS = "team"
POOL_UID = "pool-uid-1"
KERNEL_UID = "kernel-uid-1"
FRESH = Fresh(kernel_id="6f1e2d3c-aaaa-4bbb-8ccc-dddddddddddd", key="ab" * 32)
NOW = datetime(2025, 3, 4, 12, 0, 0, tzinfo=UTC)
SETTINGS = ReconcileSettings()


def pool(**spec: Any) -> Any:
    body: dict[str, Any] = {
        "apiVersion": "jupyter.org/v1alpha1",
        "kind": "KernelPool",
        "metadata": {"name": "warm", "namespace": NS, "uid": POOL_UID, "generation": 1},
        "spec": {
            "replicas": 2,
            "template": {
                "metadata": {"labels": {"team.io/app": "nb"}},
                "spec": {
                    "containers": [
                        {
                            "name": "main",
                            "image": "kernel-py:1",
                            "env": [
                                {"name": "KERNEL_ID", "value": "not-for-standby"},
                                {"name": "KERNEL_SHELL_PORT", "value": "1234"},
                                {"name": "TZ", "value": "UTC"},
                            ],
                        }
                    ]
                },
            },
        },
    }
    body["spec"].update(spec)
    return freeze(body)


def kernel(
    *,
    name: str = "k",
    template: bool = False,
    status: dict[str, Any] | None = None,
    annotations: dict[str, str] | None = None,
) -> Any:
    spec: dict[str, Any] = {"poolRef": {"name": "warm"}}
    if template:
        spec["template"] = {"spec": {"containers": [{"name": "c", "image": "own:1"}]}}
    body: dict[str, Any] = {
        "apiVersion": "jupyter.org/v1",
        "kind": "Kernel",
        "metadata": {
            "name": name,
            "namespace": NS,
            "uid": KERNEL_UID,
            "resourceVersion": "10",
            "creationTimestamp": "2025-03-04T11:59:59Z",
            "labels": {"jupyter.org/launched-by": "x"},
            "annotations": annotations or {},
        },
        "spec": spec,
    }
    if status is not None:
        body["status"] = status
    return freeze(body)


def standby(
    name: str,
    *,
    ready: bool = True,
    created: str = "2025-03-04T11:00:00Z",
    claimed_by: str | None = None,
    activated_for: str | None = None,
    phase: str = "Running",
    deleting: bool = False,
    owner_uid: str = POOL_UID,
    ip: str = "127.0.0.9",
) -> Any:
    labels = {"jupyter.org/kernel-pool": "warm"}
    owner: dict[str, Any] = {
        "apiVersion": "jupyter.org/v1alpha1",
        "kind": "KernelPool",
        "name": "warm",
        "uid": owner_uid,
        "controller": True,
    }
    if claimed_by is not None:
        labels["jupyter.org/kernel-name"] = claimed_by
        owner = {"apiVersion": "jupyter.org/v1", "kind": "Kernel", "name": claimed_by}
        owner.update(uid=KERNEL_UID, controller=True)
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": NS,
        "uid": f"uid-{name}",
        "resourceVersion": f"rv-{name}",
        "creationTimestamp": created,
        "labels": labels,
        "ownerReferences": [owner],
    }
    if activated_for is not None:
        metadata["annotations"] = {"jupyter.org/activated-for": activated_for}
    if deleting:
        metadata["deletionTimestamp"] = "2025-03-04T12:00:00Z"
    conditions = [{"type": "Ready", "status": "True" if ready else "False"}]
    status = {"phase": phase, "podIP": ip, "conditions": conditions}
    return freeze({"metadata": metadata, "status": status})


# -------------------------------------------------------------------------- standby Pods
def test_standby_pod_names_fit_with_their_secret() -> None:
    assert re.fullmatch(r"warm-[a-z0-9]{5}", standby_pod_name("warm"))
    long = standby_pod_name("p" * 80)
    assert len(f"{long}-activation") <= 63 and long.startswith("p")
    assert standby_pod_name("warm", "abcde") == "warm-abcde"


def test_a_standby_pod_waits_for_an_activation_and_carries_no_kernel_identity() -> None:
    pod = build_standby_pod(pool(), name="warm-abcde", settings=SETTINGS)

    meta = pod["metadata"]
    assert meta["labels"] == {"team.io/app": "nb", "jupyter.org/kernel-pool": "warm"}
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "jupyter.org/v1alpha1",
            "kind": "KernelPool",
            "name": "warm",
            "uid": POOL_UID,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    (main,) = pod["spec"]["containers"]
    env = {e["name"]: e for e in main["env"]}
    assert set(env) == {"TZ", "KERNEL_ACTIVATION_PORT", "KERNEL_ACTIVATION_TOKEN"}
    assert env["KERNEL_ACTIVATION_PORT"]["value"] == str(SETTINGS.activation_port)
    assert env["KERNEL_ACTIVATION_TOKEN"]["valueFrom"] == {
        "secretKeyRef": {"name": "warm-abcde-activation", "key": "token"}
    }
    assert main["readinessProbe"]["tcpSocket"] == {"port": SETTINGS.activation_port}
    assert pod["spec"]["restartPolicy"] == "Never"
    # the pool's own object is not touched (it is a frozen cache object)
    assert pool()["spec"]["template"]["spec"]["containers"][0]["name"] == "main"


def test_the_token_secret_is_owned_by_its_pod() -> None:
    pod = {"metadata": {"name": "warm-abcde", "namespace": NS, "uid": "pu"}}
    secret = build_activation_secret(pod, "t0k3n")
    assert secret["metadata"]["name"] == "warm-abcde-activation"
    assert secret["metadata"]["ownerReferences"][0]["uid"] == "pu"
    assert secret["stringData"] == {"token": "t0k3n"}


def test_tokens_are_per_pod_and_reproducible() -> None:
    one = activation_token(b"k" * 32, namespace=NS, pod_name="warm-a")
    assert one == activation_token(b"k" * 32, namespace=NS, pod_name="warm-a")
    assert one != activation_token(b"k" * 32, namespace=NS, pod_name="warm-b")
    assert one != activation_token(b"k" * 32, namespace="other", pod_name="warm-a")
    assert one != activation_token(b"j" * 32, namespace=NS, pod_name="warm-a")


def test_the_activation_request_keeps_its_key_out_of_its_repr() -> None:
    request = ActivationRequest(kernel_id="kid", key="s3cret", ports=DEFAULT_PORTS, idle_timeout=9)
    assert "s3cret" not in repr(request)
    body = json.loads(request.body())
    assert body == {
        "kernel_id": "kid",
        "key": "s3cret",
        "ports": {
            "shell": DEFAULT_PORTS.shell,
            "iopub": DEFAULT_PORTS.iopub,
            "stdin": DEFAULT_PORTS.stdin,
            "hb": DEFAULT_PORTS.hb,
            "control": DEFAULT_PORTS.control,
        },
        "idle_timeout": 9,
    }


# ------------------------------------------------------------------------------- claims
def test_idle_candidates_are_the_pools_own_unclaimed_ready_live_pods_oldest_first() -> None:
    pods = [
        standby("b", created="2025-03-04T11:00:02Z"),
        standby("a", created="2025-03-04T11:00:01Z"),
        standby("not-ready", ready=False),
        standby("claimed", claimed_by="k"),
        standby("deleting", deleting=True),
        standby("exited", phase="Failed"),
        standby("foreign", owner_uid="another-pool"),
    ]
    names = [p["metadata"]["name"] for p in idle_candidates(pool(), pods)]
    assert names == ["a", "b"]


def test_a_claim_moves_label_and_owner_under_the_cached_version() -> None:
    owner = {"apiVersion": "jupyter.org/v1", "kind": "Kernel", "name": "k", "uid": KERNEL_UID}
    patch = claim_patch(standby("a"), kernel(), owner)
    assert patch == {
        "metadata": {
            "resourceVersion": "rv-a",
            "labels": {"jupyter.org/launched-by": "x", "jupyter.org/kernel-name": "k"},
            "ownerReferences": [owner],
        }
    }


def test_kernels_created_together_try_different_pods_first() -> None:
    pods = tuple(standby(f"p{i}") for i in range(8))
    firsts = set()
    for i in range(8):
        k = thaw(kernel())
        k["metadata"]["uid"] = f"uid-{i}"
        order = spread(pods, freeze(k))
        assert sorted(p["metadata"]["name"] for p in order) == sorted(f"p{i}" for i in range(8))
        firsts.add(order[0]["metadata"]["name"])
    assert len(firsts) > 1
    assert spread((), kernel()) == ()


def test_the_kernels_pod_is_found_by_label_and_surplus_ones_are_named() -> None:
    k = kernel(annotations={"jupyter.org/kernel-id": "kid"})
    claimed = standby("a", claimed_by="k", activated_for="kid", created="2025-03-04T11:00:05Z")
    raced = standby("b", claimed_by="k", created="2025-03-04T11:00:01Z")  # older, not active
    going = standby("c", claimed_by="k", deleting=True)

    pod, surplus = choose_pod(k, None, [raced, going, claimed])

    assert pod is not None and pod["metadata"]["name"] == "a"  # the running kernel wins
    assert [p["metadata"]["name"] for p in surplus] == ["b"]  # the deleting one is going anyway
    assert choose_pod(k, None, []) == (None, ())
    assert choose_pod(k, None, [going]) == (going, ())


def test_a_kernel_status_naming_its_claimed_pod_is_the_activation_record() -> None:
    # The status of a pooled Kernel is first written once its kernel was activated, so a
    # status with the claimed Pod's IP says so after a restart, without a write of its own.
    shown = {"kernelID": "kid", "podIP": "127.0.0.9", "phase": "Running"}
    claimed = standby("a", claimed_by="k")

    assert activation_of(claimed, kernel(status=shown)) == "kid"
    assert activation_of(claimed, kernel(status={**shown, "podIP": "127.0.0.8"})) is None
    assert activation_of(claimed, kernel(status={"kernelID": "kid"})) is None
    assert activation_of(claimed, kernel()) is None
    assert activation_of(claimed, None) is None
    assert activation_of(standby("a", claimed_by="k", ip=""), kernel(status=shown)) is None
    # another Kernel's status says nothing about this Pod
    other = thaw(kernel(status=shown))
    other["metadata"]["uid"] = "kernel-uid-2"
    assert activation_of(claimed, freeze(other)) is None
    # this process's memory, then an annotation from an earlier version, come first
    assert activation_of(claimed, kernel(), recorded="kid") == "kid"
    old = standby("a", claimed_by="k", activated_for="old")
    assert activation_of(old, kernel(status=shown), recorded="kid") == "old"


def test_of_two_claimed_pods_the_one_the_status_names_is_kept() -> None:
    k = kernel(
        annotations={"jupyter.org/kernel-id": "kid"},
        status={"kernelID": "kid", "podIP": "127.0.0.9", "phase": "Running"},
    )
    active = standby("a", claimed_by="k", created="2025-03-04T11:00:05Z", ip="127.0.0.9")
    raced = standby("b", claimed_by="k", created="2025-03-04T11:00:01Z", ip="127.0.0.8")

    pod, surplus = choose_pod(k, None, [raced, active])
    assert pod is not None and pod["metadata"]["name"] == "a"
    assert [p["metadata"]["name"] for p in surplus] == ["b"]

    # before the status shows it: the Pod this process activated
    fresh = kernel(annotations={"jupyter.org/kernel-id": "kid"})
    recorded = {"uid-a": "kid"}
    pod, surplus = choose_pod(
        fresh, None, [raced, active], lambda p: recorded.get(p["metadata"]["uid"])
    )
    assert pod is not None and pod["metadata"]["name"] == "a"
    # knowing neither, the oldest
    pod, _ = choose_pod(fresh, None, [raced, active])
    assert pod is not None and pod["metadata"]["name"] == "b"


def test_a_stranger_named_like_the_kernel_is_returned_for_the_conflict() -> None:
    stranger = freeze({"metadata": {"name": "k", "namespace": NS, "uid": "x"}})
    assert choose_pod(kernel(), stranger, [standby("a", claimed_by="k")]) == (stranger, ())


def test_index_functions() -> None:
    assert kernel_pod_index(standby("a", claimed_by="k")) == [f"{NS}/k"]
    assert kernel_pod_index(standby("a")) == []
    assert pool_index(standby("a")) == [f"{NS}/warm"]
    assert standby_selector("warm") == "jupyter.org/kernel-pool=warm,!jupyter.org/kernel-name"


# ------------------------------------------------------------------------ desired state
def run(k: Any, *, pod: Any = None, settings: ReconcileSettings = SETTINGS, **observed: Any) -> Any:
    return desired_state(
        kernel=k,
        observed=Observed(pod=pod, pool=observed.pop("pool_obj", pool()), **observed),
        settings=settings,
        fresh=FRESH,
        now=NOW,
    )


def test_a_new_kernel_tries_the_idle_pods_then_would_start_cold_from_the_pools_template() -> None:
    desired = run(kernel(), standby=(standby("a"), standby("b")))
    assert desired.claim == ("a", "b")
    assert desired.pool == "warm"
    assert desired.pod is not None  # the cold start, if no claim succeeds
    (main,) = desired.pod["spec"]["containers"]
    assert main["image"] == "kernel-py:1"
    assert desired.pod["metadata"]["name"] == "k"
    assert "jupyter.org/kernel-pool" not in desired.pod["metadata"]["labels"]


def test_a_kernel_with_its_own_template_starts_cold_from_it() -> None:
    desired = run(kernel(template=True), standby=())
    assert desired.pod is not None
    assert desired.pod["spec"]["containers"][0]["image"] == "own:1"


def test_a_kernel_that_had_a_pod_is_recreated_cold() -> None:
    desired = run(kernel(status={"phase": "Running"}), standby=(standby("a"),))
    assert desired.claim == ()
    assert desired.pod is not None


def test_the_kernel_id_may_come_from_the_annotation() -> None:
    desired = run(kernel(annotations={"jupyter.org/kernel-id": "jupyters-id"}))
    assert desired.identity is not None and desired.identity.kernel_id == "jupyters-id"
    assert desired.annotations is not None
    assert desired.annotations["jupyter.org/kernel-id"] == "jupyters-id"


def test_a_missing_pool_is_reported_and_nothing_is_created() -> None:
    desired = run(kernel(), pool_obj=None)
    assert desired.pod is None and not desired.claim
    ready = desired.status["conditions"][0]
    assert (ready["status"], ready["reason"]) == ("False", "PoolNotFound")
    assert "KernelPool warm" in ready["message"]


def test_a_claimed_pod_is_activated_before_the_kernel_is_ready() -> None:
    k = kernel(annotations={"jupyter.org/kernel-id": "kid"})
    claimed = standby("a", claimed_by="k")

    desired = run(k, pod=claimed)

    assert desired.activate == "a"
    assert desired.pod is None
    ready = desired.status["conditions"][0]
    assert (ready["status"], ready["reason"]) == ("False", "Activating")
    assert desired.became_ready_after is None

    active = run(k, pod=standby("a", claimed_by="k", activated_for="kid"))
    assert active.activate is None
    assert active.status["conditions"][0]["status"] == "True"
    assert active.ready_source == "pool"
    assert active.became_ready_after == 1.0


def test_a_recorded_activation_not_in_the_cache_yet_turns_the_kernel_ready() -> None:
    k = kernel(annotations={"jupyter.org/kernel-id": "kid"})
    claimed = freeze(standby("a", claimed_by="k"))

    seen = with_activation(claimed, "kid")

    assert run(k, pod=seen).status["conditions"][0]["status"] == "True"
    assert seen["metadata"]["annotations"]["jupyter.org/activated-for"] == "kid"
    assert "jupyter.org/activated-for" not in (claimed["metadata"].get("annotations") or {})


def test_an_exited_or_deleted_claimed_pod_is_not_activated() -> None:
    k = kernel(annotations={"jupyter.org/kernel-id": "kid"})
    assert run(k, pod=standby("a", claimed_by="k", phase="Failed")).activate is None
    assert run(k, pod=standby("a", claimed_by="k", deleting=True)).activate is None


def test_in_secret_mode_the_activation_key_goes_into_the_kernels_secret() -> None:
    secret_mode = ReconcileSettings(key_mode=KeyMode.SECRET)
    desired = run(kernel(), pod=standby("a", claimed_by="k"), settings=secret_mode)
    assert desired.secret is not None
    assert desired.secret["stringData"]["key"] == desired.activation_key == FRESH.key
    assert FRESH.key not in json.dumps(desired.status)


def test_surplus_pods_are_to_be_deleted() -> None:
    desired = run(
        kernel(annotations={"jupyter.org/kernel-id": "kid"}),
        pod=standby("a", claimed_by="k", activated_for="kid"),
        surplus_pods=(standby("b", claimed_by="k"),),
    )
    assert desired.delete_pods == (("b", "uid-b"),)


def test_with_template_leaves_a_kernels_own_template() -> None:
    own = kernel(template=True)
    assert with_template(own, pool()) is own
    assert with_template(kernel(), None)["spec"].get("template") is None


# ------------------------------------------------------------------ backoff, in flight
class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_backoff_doubles_per_failed_pod_once_and_resets_on_success() -> None:
    clock = Clock()
    backoff = StandbyBackoff(base=1.0, cap=8.0, monotonic=clock)
    assert backoff.wait("p") == 0.0
    assert backoff.failed("p", "u1") == 1.0
    assert backoff.failed("p", "u1") is None  # the same Pod seen again
    assert backoff.wait("p") == 1.0
    assert [backoff.failed("p", f"u{n}") for n in range(2, 7)] == [2.0, 4.0, 8.0, 8.0, 8.0]
    clock.now += 5
    assert backoff.wait("p") == 3.0
    assert backoff.wait("other") == 0.0
    backoff.succeeded("p")
    assert (backoff.wait("p"), backoff.failures("p")) == (0.0, 0)


def test_in_flight_names_are_dropped_once_settled_or_expired() -> None:
    clock = Clock()
    flight = InFlight(ttl=30.0, monotonic=clock)
    flight.add("p", "a")
    flight.add("p", "b")
    assert flight.outstanding("p", lambda n: n == "a") == {"b"}
    clock.now += 31
    assert flight.outstanding("p", lambda n: False) == set()
    assert flight.outstanding("q", lambda n: False) == set()
