"""What the caches keep of each object: only what the controller reads (SPEC §11).

Each transform gets a freshly parsed, mutable object and returns what goes into the cache
(frozen afterwards by the informer). Runs on reflector threads.
"""

from __future__ import annotations

from typing import Any

Raw = dict[str, Any]

_POD_META = (
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "labels",
    "ownerReferences",
    "creationTimestamp",
    "deletionTimestamp",
)
_POD_STATUS = ("phase", "conditions", "podIP", "reason", "message", "startTime")
# the only ones read: the activation record that earlier versions wrote on claimed Pods
_POD_ANNOTATIONS = frozenset({"jupyter.org/activated-for"})
_CONTAINER_STATUS = ("name", "state", "ready", "restartCount", "started")
_EVENT_KEEP = ("involvedObject", "reason", "message", "type", "count", "lastTimestamp")


def strip_managed_fields(obj: Raw) -> Raw:
    metadata = obj.get("metadata")
    if isinstance(metadata, dict):
        metadata.pop("managedFields", None)
    return obj


def strip_kernel(kernel: Raw) -> Raw:
    """Drop ``managedFields`` and kubectl's annotations (``last-applied-configuration`` is a
    second copy of the spec); they are never read and never copied onto the Pod."""
    metadata = strip_managed_fields(kernel).get("metadata")
    annotations = metadata.get("annotations") if isinstance(metadata, dict) else None
    if isinstance(annotations, dict):
        for key in [k for k in annotations if "kubectl" in k]:
            del annotations[key]
    return kernel


def strip_pod(pod: Raw) -> Raw:
    """Keep identity, ownership and status; the spec is never read (Pods are not mutated)."""
    metadata = pod.get("metadata") or {}
    status = pod.get("status") or {}
    kept_status: Raw = {k: status[k] for k in _POD_STATUS if k in status}
    if "containerStatuses" in status:
        kept_status["containerStatuses"] = [
            {k: c[k] for k in _CONTAINER_STATUS if k in c} for c in status["containerStatuses"]
        ]
    kept_meta: Raw = {k: metadata[k] for k in _POD_META if k in metadata}
    ours = {k: v for k, v in (metadata.get("annotations") or {}).items() if k in _POD_ANNOTATIONS}
    if ours:
        kept_meta["annotations"] = ours
    return {
        "apiVersion": pod.get("apiVersion", "v1"),
        "kind": pod.get("kind", "Pod"),
        "metadata": kept_meta,
        "status": kept_status,
    }


def strip_event(event: Raw) -> Raw:
    metadata = event.get("metadata") or {}
    kept: Raw = {k: event[k] for k in _EVENT_KEEP if k in event}
    kept["metadata"] = {
        k: metadata[k] for k in ("name", "namespace", "uid", "resourceVersion") if k in metadata
    }
    return kept


_SERVICE_META = (
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "labels",
    "ownerReferences",
    "deletionTimestamp",
)


def strip_service(service: Raw) -> Raw:
    """Keep identity, ownership and the spec fields we own (type, selector, ports)."""
    metadata = service.get("metadata") or {}
    spec = service.get("spec") or {}
    return {
        "apiVersion": service.get("apiVersion", "v1"),
        "kind": service.get("kind", "Service"),
        "metadata": {k: metadata[k] for k in _SERVICE_META if k in metadata},
        "spec": {k: spec[k] for k in ("type", "selector", "ports") if k in spec},
    }


def strip_namespace(namespace: Raw) -> Raw:
    """Keep what tells a namespace is being deleted: its name and deletion state."""
    metadata = namespace.get("metadata") or {}
    return {
        "metadata": {
            k: metadata[k]
            for k in ("name", "uid", "resourceVersion", "deletionTimestamp")
            if k in metadata
        },
        "status": {"phase": (namespace.get("status") or {}).get("phase", "")},
    }


def strip_pool(pool: Raw) -> Raw:
    """Keep what the pool controller reads: identity, spec and status (no managedFields)."""
    return strip_kernel(pool)
