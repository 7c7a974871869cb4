"""Unit tests of ``reconcilers.transforms``: what the caches keep of Pods and Events."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from reconcilers.transforms import strip_event, strip_kernel, strip_managed_fields, strip_pod

MANAGED_FIELDS = [
    {
        "manager": "kubelet",
        "operation": "Update",
        "apiVersion": "v1",
        "time": "2025-03-04T11:00:09Z",
        "fieldsType": "FieldsV1",
        "fieldsV1": {"f:status": {"f:phase": {}}},
        "subresource": "status",
    }
]
OWNER_REFS = [
    {
        "apiVersion": "jupyter.org/v1",
        "kind": "Kernel",
        "name": "nb",
        "uid": "k-uid",
        "controller": True,
        "blockOwnerDeletion": True,
    }
]
CONDITIONS = [
    {
        "type": "Ready",
        "status": "True",
        "lastProbeTime": None,
        "lastTransitionTime": "2025-03-04T11:00:09Z",
    },
    {
        "type": "PodScheduled",
        "status": "True",
        "lastProbeTime": None,
        "lastTransitionTime": "2025-03-04T11:00:01Z",
    },
]
RUNNING_STATE = {"running": {"startedAt": "2025-03-04T11:00:05Z"}}


def api_pod() -> dict[str, Any]:
    """A Pod as a watch delivers it, with everything the controller never reads."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "nb",
            "namespace": "team",
            "uid": "pod-uid",
            "resourceVersion": "5000",
            "generation": 1,
            "creationTimestamp": "2025-03-04T11:00:00Z",
            "deletionTimestamp": "2025-03-04T12:00:00Z",
            "deletionGracePeriodSeconds": 30,
            "labels": {"jupyter.org/kernel-name": "nb"},
            "annotations": {"example.com/big": "x" * 100},
            "ownerReferences": copy.deepcopy(OWNER_REFS),
            "managedFields": copy.deepcopy(MANAGED_FIELDS),
        },
        "spec": {
            "containers": [{"name": "nb", "image": "img", "env": [{"name": "KERNEL_ID"}]}],
            "nodeName": "node-1",
            "restartPolicy": "Never",
        },
        "status": {
            "phase": "Running",
            "conditions": copy.deepcopy(CONDITIONS),
            "hostIP": "192.168.0.10",
            "hostIPs": [{"ip": "192.168.0.10"}],
            "podIP": "10.1.2.3",
            "podIPs": [{"ip": "10.1.2.3"}],
            "startTime": "2025-03-04T11:00:01Z",
            "qosClass": "BestEffort",
            "containerStatuses": [
                {
                    "name": "nb",
                    "state": copy.deepcopy(RUNNING_STATE),
                    "lastState": {},
                    "ready": True,
                    "restartCount": 0,
                    "image": "img:latest",
                    "imageID": "docker.io/library/img@sha256:abc",
                    "containerID": "containerd://123",
                    "started": True,
                }
            ],
        },
    }


def test_strip_pod_keeps_what_the_controller_reads() -> None:
    assert strip_pod(api_pod()) == {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "nb",
            "namespace": "team",
            "uid": "pod-uid",
            "resourceVersion": "5000",
            "generation": 1,
            "labels": {"jupyter.org/kernel-name": "nb"},
            "ownerReferences": OWNER_REFS,
            "creationTimestamp": "2025-03-04T11:00:00Z",
            "deletionTimestamp": "2025-03-04T12:00:00Z",
        },
        "status": {
            "phase": "Running",
            "conditions": CONDITIONS,
            "podIP": "10.1.2.3",
            "startTime": "2025-03-04T11:00:01Z",
            "containerStatuses": [
                {
                    "name": "nb",
                    "state": RUNNING_STATE,
                    "ready": True,
                    "restartCount": 0,
                    "started": True,
                }
            ],
        },
    }


def test_strip_pod_keeps_the_failure_reason_of_an_evicted_pod() -> None:
    pod = api_pod()
    pod["status"] = {
        "phase": "Failed",
        "reason": "Evicted",
        "message": "The node was low on resource: memory.",
    }

    stripped = strip_pod(pod)

    assert stripped["status"] == pod["status"]
    assert "spec" not in stripped
    assert "managedFields" not in stripped["metadata"]


@pytest.mark.parametrize(
    "pod",
    [
        {"metadata": {"name": "nb"}},
        {"metadata": {"name": "nb"}, "status": {}},
        {"metadata": {"name": "nb"}, "status": {"phase": "Pending"}, "spec": {}},
    ],
    ids=["no-status", "empty-status", "pending-no-container-statuses"],
)
def test_strip_pod_of_a_young_pod(pod: dict[str, Any]) -> None:
    stripped = strip_pod(pod)

    assert stripped["metadata"] == {"name": "nb"}
    assert stripped["status"] == (pod.get("status") or {})
    assert "containerStatuses" not in stripped["status"]
    assert set(stripped) == {"apiVersion", "kind", "metadata", "status"}


EVENT_KEEP = {
    "involvedObject": {
        "kind": "Pod",
        "namespace": "team",
        "name": "nb",
        "uid": "pod-uid",
        "apiVersion": "v1",
        "resourceVersion": "5000",
        "fieldPath": "spec.containers{nb}",
    },
    "reason": "Failed",
    "message": 'Failed to pull image "img": not found',
    "type": "Warning",
    "count": 3,
    "lastTimestamp": "2025-03-04T11:00:30Z",
}


def test_strip_event_keeps_what_is_reissued() -> None:
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": "nb.182a",
            "namespace": "team",
            "uid": "ev-uid",
            "resourceVersion": "6000",
            "creationTimestamp": "2025-03-04T11:00:10Z",
            "managedFields": copy.deepcopy(MANAGED_FIELDS),
        },
        **copy.deepcopy(EVENT_KEEP),
        "source": {"component": "kubelet", "host": "node-1"},
        "firstTimestamp": "2025-03-04T11:00:10Z",
        "reportingComponent": "kubelet",
        "reportingInstance": "node-1",
    }

    assert strip_event(event) == {
        **EVENT_KEEP,
        "metadata": {
            "name": "nb.182a",
            "namespace": "team",
            "uid": "ev-uid",
            "resourceVersion": "6000",
        },
    }


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (
            {"metadata": {"name": "x", "managedFields": MANAGED_FIELDS}, "spec": {"a": 1}},
            {"metadata": {"name": "x"}, "spec": {"a": 1}},
        ),
        ({"metadata": {"name": "x"}}, {"metadata": {"name": "x"}}),
        ({"kind": "List"}, {"kind": "List"}),
        ({"metadata": None}, {"metadata": None}),
    ],
    ids=["removed", "absent", "no-metadata", "null-metadata"],
)
def test_strip_managed_fields(obj: dict[str, Any], expected: dict[str, Any]) -> None:
    original = copy.deepcopy(obj)

    result = strip_managed_fields(original)

    assert result is original
    assert result == expected


def test_strip_kernel_drops_what_is_never_read() -> None:
    kernel = {
        "metadata": {
            "name": "k",
            "managedFields": MANAGED_FIELDS,
            "annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": '{"spec": {}}',
                "jupyter.org/kernel-id": "id-1",
                "team": "a",
            },
        },
        "spec": {"template": {"spec": {"containers": [{"name": "main", "image": "i"}]}}},
        "status": {"phase": "Running"},
    }
    expected = copy.deepcopy(kernel)
    del expected["metadata"]["managedFields"]
    del expected["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]

    assert strip_kernel(kernel) == expected


@pytest.mark.parametrize(
    "kernel",
    [{"metadata": {"name": "k"}}, {"metadata": {"annotations": None}}, {"metadata": None}, {}],
    ids=["no-annotations", "null-annotations", "null-metadata", "no-metadata"],
)
def test_strip_kernel_of_sparse_kernels(kernel: dict[str, Any]) -> None:
    assert strip_kernel(copy.deepcopy(kernel)) == kernel
