"""Unit test of the order in which a reconcile pass reads its expectations and its caches."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from reconcilers.desired import Desired, Observed
from reconcilers.kernel import KernelReconciler, ReissueLog
from reconcilers.model import ReconcileSettings
from reconcilers.outcome import DONE, Result

Obj = dict[str, Any]
KEY = "ns/k1"
KERNEL: Obj = {
    "apiVersion": "jupyter.org/v1alpha1",
    "kind": "Kernel",
    "metadata": {"name": "k1", "namespace": "ns", "uid": "u1", "generation": 1},
    "spec": {"template": {"spec": {"containers": [{"name": "main", "image": "kernel-py:1"}]}}},
}


class Cache:
    """A cache lookup that runs ``on_read`` when read (an informer event arriving then)."""

    def __init__(self, objects: dict[str, Obj], on_read: Any = None) -> None:
        self.objects = objects
        self.on_read = on_read

    def get(self, key: str) -> Obj | None:
        if self.on_read is not None:
            self.on_read()
        return self.objects.get(key)

    def by_index(self, index_name: str, value: str) -> Sequence[Obj]:
        return ()


class RecordingApplier:
    def __init__(self) -> None:
        self.expected = {"pod", "service"}
        self.observed: list[Observed] = []

    def awaiting(self, key: str) -> frozenset[str]:
        return frozenset(self.expected)

    def apply(self, kernel: Obj, desired: Desired, observed: Observed) -> Result:
        self.observed.append(observed)
        return DONE


def test_expectations_are_read_before_the_caches() -> None:
    # The Service created by the last pass reaches the cache while this pass reads the caches:
    # its event clears the expectation after the read. The pass must still count the Service
    # as awaited (it is not in what it read), or it would create it a second time.
    applier = RecordingApplier()
    services = Cache({}, on_read=lambda: applier.expected.discard("service"))
    reconciler = KernelReconciler(
        kernels=Cache({KEY: KERNEL}),
        pods=Cache({}),
        services=services,
        warnings=None,
        applier=applier,
        settings=ReconcileSettings(),
        reissued=ReissueLog(),
    )
    reconciler.reconcile(KEY)
    (observed,) = applier.observed
    assert observed.service is None
    assert observed.awaiting == {"pod", "service"}

    reconciler.reconcile(KEY)  # the next pass, brought by that event, sees it cleared
    assert applier.observed[-1].awaiting == {"pod"}


class Indexed(Cache):
    def __init__(self, objects: dict[str, Obj], indexed: Sequence[Obj]) -> None:
        super().__init__(objects)
        self.indexed = indexed

    def by_index(self, index_name: str, value: str) -> Sequence[Obj]:
        return self.indexed


class DesiredApplier(RecordingApplier):
    def __init__(self) -> None:
        super().__init__()
        self.expected = set()
        self.desired: list[Desired] = []

    def apply(self, kernel: Obj, desired: Desired, observed: Observed) -> Result:
        self.desired.append(desired)
        return super().apply(kernel, desired, observed)


def test_a_pooled_kernel_whose_status_shows_its_activation_is_not_activated_again() -> None:
    # After a restart nothing remembers the activation but the Kernel's status, written only
    # after it: the pass reads it from there and leaves the kernel as it is.
    kid = "6f1e2d3c-aaaa-4bbb-8ccc-dddddddddddd"
    claimed: Obj = {
        "metadata": {
            "name": "warm-abcde",
            "namespace": "ns",
            "uid": "pod-uid",
            "labels": {"jupyter.org/kernel-pool": "warm", "jupyter.org/kernel-name": "k1"},
            "ownerReferences": [{"kind": "Kernel", "name": "k1", "uid": "u1", "controller": True}],
        },
        "status": {
            "phase": "Running",
            "podIP": "10.0.0.7",
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }
    kernel: Obj = {
        **KERNEL,
        "metadata": {
            **KERNEL["metadata"],
            "annotations": {"jupyter.org/kernel-id": kid},
        },
        "spec": {"poolRef": {"name": "warm"}},
    }
    applier = DesiredApplier()
    pool: Obj = {"metadata": {"name": "warm", "namespace": "ns", "uid": "pool-uid"}}
    recorded: dict[str, str] = {}

    def reconcile(status: Obj) -> Desired:
        reconciler = KernelReconciler(
            kernels=Cache({KEY: {**kernel, "status": status}}),
            pods=Indexed({}, [claimed]),
            services=Cache({}),
            warnings=None,
            applier=applier,
            settings=ReconcileSettings(),
            reissued=ReissueLog(),
            pools=Cache({"ns/warm": pool}),
            pool_pods=Indexed({}, []),
            activations=lambda pod: recorded.get(pod["metadata"]["uid"]),
        )
        reconciler.reconcile(KEY)
        return applier.desired[-1]

    shown = {"kernelID": kid, "podIP": "10.0.0.7", "phase": "Running"}
    desired = reconcile(shown)
    assert desired.activate is None
    assert desired.status["conditions"][0]["status"] == "True"

    # A status not written yet (or naming another Pod): activated first, then Ready.
    assert reconcile({}).activate == "warm-abcde"
    assert reconcile({**shown, "podIP": "10.0.0.8"}).activate == "warm-abcde"
    recorded["pod-uid"] = kid  # this process just activated it
    assert reconcile({}).activate is None
