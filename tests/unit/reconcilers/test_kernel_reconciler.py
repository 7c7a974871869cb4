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
