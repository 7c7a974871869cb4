"""The local control plane is a real one: CRDs, CEL validation, garbage collection, etcd
compaction and API server restarts behave as on any cluster."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from eventually import eventually
from localcluster import ControlPlane

GROUP = "harness.test.example.com"


def widget_crd(plural: str) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "names": {"kind": plural.capitalize()[:-1], "plural": plural, "singular": plural[:-1]},
            "scope": "Namespaced",
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "properties": {
                                        "replicas": {"type": "integer"},
                                        "color": {"type": "string"},
                                    },
                                    "x-kubernetes-validations": [
                                        {
                                            "rule": "!has(self.replicas) || self.replicas >= 0",
                                            "message": "replicas must not be negative",
                                        }
                                    ],
                                }
                            },
                        }
                    },
                }
            ],
        },
    }


@pytest.fixture
def widgets(api_client: client.ApiClient) -> Any:
    """A fresh CRD (unique plural) that is established; deleted afterwards."""
    plural = f"widgets{uuid.uuid4().hex[:8]}"
    ext = client.ApiextensionsV1Api(api_client)
    ext.create_custom_resource_definition(widget_crd(plural))

    def established() -> bool:
        crd = ext.read_custom_resource_definition(f"{plural}.{GROUP}")
        conditions = (crd.status.conditions if crd.status else None) or []
        return any(c.type == "Established" and c.status == "True" for c in conditions)

    eventually(established, timeout=30, message="CRD not established")
    yield plural
    ext.delete_custom_resource_definition(f"{plural}.{GROUP}")


def test_custom_object_round_trips(
    api_client: client.ApiClient, namespace: str, widgets: str
) -> None:
    custom = client.CustomObjectsApi(api_client)
    body = {
        "apiVersion": f"{GROUP}/v1",
        "kind": widgets.capitalize()[:-1],
        "metadata": {"name": "one"},
        "spec": {"replicas": 3, "color": "blue"},
    }
    created = custom.create_namespaced_custom_object(GROUP, "v1", namespace, widgets, body)
    assert created["metadata"]["uid"]

    read = custom.get_namespaced_custom_object(GROUP, "v1", namespace, widgets, "one")
    assert read["spec"] == {"replicas": 3, "color": "blue"}


def test_cel_rule_rejects_bad_object_with_its_message(
    api_client: client.ApiClient, namespace: str, widgets: str
) -> None:
    custom = client.CustomObjectsApi(api_client)
    body = {
        "apiVersion": f"{GROUP}/v1",
        "kind": widgets.capitalize()[:-1],
        "metadata": {"name": "bad"},
        "spec": {"replicas": -1},
    }
    with pytest.raises(ApiException) as info:
        custom.create_namespaced_custom_object(GROUP, "v1", namespace, widgets, body)

    assert info.value.status == 422
    assert "replicas must not be negative" in str(info.value.body)


def test_garbage_collector_deletes_dependents(api_client: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api_client)
    owner = core.create_namespaced_config_map(namespace, {"metadata": {"name": "owner"}})
    core.create_namespaced_config_map(
        namespace,
        {
            "metadata": {
                "name": "dependent",
                "ownerReferences": [
                    {
                        "apiVersion": "v1",
                        "kind": "ConfigMap",
                        "name": "owner",
                        "uid": owner.metadata.uid,
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            }
        },
    )

    core.delete_namespaced_config_map("owner", namespace)

    def dependent_gone() -> bool:
        names = [cm.metadata.name for cm in core.list_namespaced_config_map(namespace).items]
        return "dependent" not in names

    eventually(dependent_gone, timeout=60, interval=0.5, message="dependent not collected")


def test_watch_from_compacted_resource_version_gets_410(
    control_plane: ControlPlane, api_client: client.ApiClient, namespace: str
) -> None:
    # PodTemplates bypass the API server's watch cache (see the harness), so the watch is
    # answered by etcd itself.
    core = client.CoreV1Api(api_client)
    template = {
        "metadata": {"name": "counter", "labels": {"n": "0"}},
        "template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}},
    }
    created = core.create_namespaced_pod_template(namespace, template)
    old_rv = created.metadata.resource_version
    for n in range(1, 5):
        core.patch_namespaced_pod_template(
            "counter", namespace, {"metadata": {"labels": {"n": str(n)}}}
        )

    compacted_at = control_plane.compact_etcd()
    assert compacted_at > int(old_rv)

    resp = core.list_namespaced_pod_template(
        namespace,
        watch=True,
        resource_version=old_rv,
        timeout_seconds=5,
        _preload_content=False,
    )
    try:
        events = [json.loads(line) for line in resp.read().splitlines() if line.strip()]
    finally:
        resp.release_conn()

    errors = [e["object"] for e in events if e["type"] == "ERROR"]
    assert errors, f"expected an ERROR event, got {[e['type'] for e in events]}"
    assert errors[0]["code"] == 410
    assert errors[0]["reason"] in {"Expired", "Gone"}


def test_new_request_succeeds_after_apiserver_restart(
    control_plane: ControlPlane, api_client: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(api_client)
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "before"}})
    pid_before = control_plane.processes["kube-apiserver"].pid

    control_plane.restart_apiserver()

    assert control_plane.processes["kube-apiserver"].pid != pid_before
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "after"}})
    names = {cm.metadata.name for cm in core.list_namespaced_config_map(namespace).items}
    assert {"before", "after"} <= names
