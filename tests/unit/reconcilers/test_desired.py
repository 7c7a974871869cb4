"""Unit tests of ``reconcilers.desired``: the pure desired state of one Kernel.

Inputs are built the way the API server returns them and frozen with ``informers.freeze``, as
the caches hand them out; any attempt of the code under test to mutate them raises.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from informers import freeze, thaw
from reconcilers.desired import (
    Desired,
    EventSpec,
    InvalidKernel,
    Observed,
    build_pod,
    build_secret,
    build_service,
    decide_identity,
    desired_state,
    service_drift,
)
from reconcilers.model import (
    DEFAULT_PORTS,
    Fresh,
    Identity,
    KernelPorts,
    KeyMode,
    ReconcileSettings,
)

NAME = "nb"
NS = "team"
UID = "0b7c5a9e-1111-4222-8333-444455556666"
OTHER_UID = "7d2f0c11-9999-4888-8777-666655554444"
HOST = "nb.team.svc.cluster.local"
NAME_LABEL = "jupyter.org/kernel-name"
ID_ANNOTATION = "jupyter.org/kernel-id"
INFO_ANNOTATION = "jupyter.org/kernel-connection-info"

FRESH = Fresh(kernel_id="6f1e2d3c-aaaa-4bbb-8ccc-dddddddddddd", key="c0ffee" * 10 + "beef")
NOW = datetime(2025, 3, 4, 12, 0, 0, tzinfo=UTC)
KERNEL_ID_MODE = ReconcileSettings()
SECRET_MODE = ReconcileSettings(key_mode=KeyMode.SECRET)

T_CREATED = "2025-03-04T11:00:00Z"
T_SCHEDULED = "2025-03-04T11:00:01Z"
T_INIT = "2025-03-04T11:00:02Z"
T_STARTED = "2025-03-04T11:00:05Z"
T_PROBED = "2025-03-04T11:00:08Z"
T_READY = "2025-03-04T11:00:09Z"
T_FINISHED = "2025-03-04T11:30:00Z"

OWNER_REF = {
    "apiVersion": "jupyter.org/v1",
    "kind": "Kernel",
    "name": NAME,
    "uid": UID,
    "controller": True,
    "blockOwnerDeletion": True,
}
DEFAULT_PORT_ENV = [
    {"name": "KERNEL_SHELL_PORT", "value": "52317"},
    {"name": "KERNEL_IOPUB_PORT", "value": "52318"},
    {"name": "KERNEL_STDIN_PORT", "value": "52319"},
    {"name": "KERNEL_HB_PORT", "value": "52320"},
    {"name": "KERNEL_CONTROL_PORT", "value": "52321"},
]

PERSISTED_ID = "a1b2c3d4-0000-4000-8000-000000000001"
PERSISTED_PORTS = KernelPorts(shell=41001, iopub=41002, stdin=41003, hb=41004, control=41005)  # noqa: S604


def persisted_info(*, key: str | None) -> str:
    key_part = f'"key":"{key}",' if key is not None else ""
    return (
        '{"shell_port":41001,"stdin_port":41003,"iopub_port":41002,"control_port":41005,'
        f'"hb_port":41004,"ip":"{HOST}",{key_part}"transport":"tcp",'
        '"signature_scheme":"hmac-sha256","kernel_name":""}'
    )


def persisted_annotations(*, key: str | None = PERSISTED_ID) -> dict[str, str]:
    return {ID_ANNOTATION: PERSISTED_ID, INFO_ANNOTATION: persisted_info(key=key)}


# ------------------------------------------------------------------------------- builders
def make_kernel(
    *,
    env: Sequence[Mapping[str, Any]] = (),
    container: Mapping[str, Any] | None = None,
    sidecars: Sequence[Mapping[str, Any]] = (),
    pod_spec: Mapping[str, Any] | None = None,
    template_metadata: Mapping[str, Any] | None = None,
    idle_timeout: int | None = None,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    status: Mapping[str, Any] | None = None,
) -> Any:
    """A frozen Kernel as the API server (and then the cache) returns it."""
    main: dict[str, Any] = {"name": "kernel", "image": "quay.io/jupyter/base-notebook:2025-03"}
    main.update(thaw(dict(container or {})))
    if env:
        main["env"] = [dict(e) for e in env]
    template: dict[str, Any] = {"spec": {"containers": [main, *map(thaw, sidecars)]}}
    template["spec"].update(thaw(dict(pod_spec or {})))
    if template_metadata is not None:
        template["metadata"] = thaw(dict(template_metadata))
    spec: dict[str, Any] = {"template": template}
    if idle_timeout is not None:
        spec["idleTimeoutSeconds"] = idle_timeout
    metadata: dict[str, Any] = {
        "name": NAME,
        "namespace": NS,
        "uid": UID,
        "generation": 3,
        "resourceVersion": "4711",
        "creationTimestamp": T_CREATED,
    }
    if labels is not None:
        metadata["labels"] = dict(labels)
    if annotations is not None:
        metadata["annotations"] = dict(annotations)
    kernel: dict[str, Any] = {
        "apiVersion": "jupyter.org/v1",
        "kind": "Kernel",
        "metadata": metadata,
        "spec": spec,
    }
    if status is not None:
        kernel["status"] = thaw(dict(status))
    return freeze(kernel)


def stored_ready(reason: str) -> dict[str, Any]:
    """A Kernel status whose stored Ready condition has ``reason``."""
    return {"conditions": [{"type": "Ready", "status": "False", "reason": reason, "message": "x"}]}


def cond(
    type_: str,
    status: str,
    when: str,
    *,
    reason: str | None = None,
    message: str | None = None,
    probed: str | None = None,
) -> dict[str, Any]:
    """A Pod condition as the API server returns it (``lastProbeTime`` null unless set)."""
    out: dict[str, Any] = {
        "type": type_,
        "status": status,
        "lastProbeTime": probed,
        "lastTransitionTime": when,
    }
    if reason is not None:
        out["reason"] = reason
    if message is not None:
        out["message"] = message
    return out


def container_status(state: Mapping[str, Any], *, ready: bool = False) -> dict[str, Any]:
    return {
        "name": NAME,
        "ready": ready,
        "restartCount": 0,
        "started": "running" in state,
        "state": dict(state),
    }


def make_pod(
    *,
    phase: str | None = "Pending",
    conditions: Sequence[Mapping[str, Any]] = (),
    statuses: Sequence[Mapping[str, Any]] = (),
    pod_ip: str | None = None,
    owner_refs: Sequence[Mapping[str, Any]] | None = None,
    extra_status: Mapping[str, Any] | None = None,
) -> Any:
    """A frozen cached Pod (after ``strip_pod``)."""
    status: dict[str, Any] = {}
    if phase is not None:
        status["phase"] = phase
    if conditions:
        status["conditions"] = [dict(c) for c in conditions]
    if statuses:
        status["containerStatuses"] = [thaw(dict(s)) for s in statuses]
    if pod_ip is not None:
        status["podIP"] = pod_ip
        status["startTime"] = T_SCHEDULED
    status.update(extra_status or {})
    return freeze(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": NAME,
                "namespace": NS,
                "uid": "pod-uid-1",
                "resourceVersion": "5000",
                "labels": {NAME_LABEL: NAME},
                "ownerReferences": [dict(r) for r in (owner_refs or [OWNER_REF])],
                "creationTimestamp": T_CREATED,
            },
            "status": status,
        }
    )


def api_service(**spec_changes: Any) -> Any:
    """A frozen cached Service as the API server returns the one we create, plus others' edits."""
    ports = [
        {"name": name, "protocol": "TCP", "port": port, "targetPort": port}
        for name, port in (
            ("shell-port", 52317),
            ("iopub-port", 52318),
            ("stdin-port", 52319),
            ("hb-port", 52320),
            ("control-port", 52321),
        )
    ]
    spec: dict[str, Any] = {
        "type": "ClusterIP",
        "clusterIP": "10.96.12.34",
        "clusterIPs": ["10.96.12.34"],
        "ipFamilies": ["IPv4"],
        "ipFamilyPolicy": "SingleStack",
        "internalTrafficPolicy": "Cluster",
        "sessionAffinity": "None",
        "selector": {NAME_LABEL: NAME},
        "ports": ports,
    }
    spec.update(spec_changes)
    return freeze(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": NAME,
                "namespace": NS,
                "uid": "svc-uid-1",
                "resourceVersion": "5001",
                "creationTimestamp": T_CREATED,
                "labels": {NAME_LABEL: NAME, "team.io/cost-center": "42"},
                "annotations": {"example.com/note": "added by someone else"},
                "ownerReferences": [dict(OWNER_REF)],
            },
            "spec": spec,
            "status": {"loadBalancer": {}},
        }
    )


def run(
    kernel: Any,
    *,
    pod: Any = None,
    service: Any = None,
    warnings: Sequence[Any] = (),
    settings: ReconcileSettings = KERNEL_ID_MODE,
    now: datetime = NOW,
) -> Desired:
    return desired_state(
        kernel=kernel,
        observed=Observed(pod=pod, service=service, pod_warnings=tuple(warnings)),
        settings=settings,
        fresh=FRESH,
        now=now,
    )


def main_env(desired: Desired) -> dict[str, dict[str, Any]]:
    assert desired.pod is not None
    return {e["name"]: e for e in desired.pod["spec"]["containers"][0]["env"]}


def ready_condition(status: Mapping[str, Any]) -> Mapping[str, Any]:
    (ready,) = [c for c in status["conditions"] if c["type"] == "Ready"]
    return ready


def all_keys(value: Any) -> Iterator[str]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield key
            yield from all_keys(item)
    elif isinstance(value, list):
        for item in value:
            yield from all_keys(item)


def ago(seconds: float) -> str:
    return (NOW - timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


# ------------------------------------------------------------------------------- identity
@pytest.mark.parametrize(
    ("kernel", "settings", "kernel_id", "info"),
    [
        (
            make_kernel(),
            KERNEL_ID_MODE,
            FRESH.kernel_id,
            '{"shell_port":52317,"stdin_port":52319,"iopub_port":52318,"control_port":52321,'
            '"hb_port":52320,"ip":"nb.team.svc.cluster.local",'
            '"key":"6f1e2d3c-aaaa-4bbb-8ccc-dddddddddddd","transport":"tcp",'
            '"signature_scheme":"hmac-sha256","kernel_name":""}',
        ),
        (
            make_kernel(
                env=[
                    {"name": "KERNEL_ID", "value": "my-own-id"},
                    {"name": "KERNEL_SHELL_PORT", "value": "6001"},
                    {"name": "KERNEL_IOPUB_PORT", "value": "6002"},
                    {"name": "KERNEL_STDIN_PORT", "value": "6003"},
                    {"name": "KERNEL_HB_PORT", "value": "6004"},
                    {"name": "KERNEL_CONTROL_PORT", "value": "6005"},
                ]
            ),
            KERNEL_ID_MODE,
            "my-own-id",
            '{"shell_port":6001,"stdin_port":6003,"iopub_port":6002,"control_port":6005,'
            '"hb_port":6004,"ip":"nb.team.svc.cluster.local","key":"my-own-id",'
            '"transport":"tcp","signature_scheme":"hmac-sha256","kernel_name":""}',
        ),
        (
            make_kernel(env=[{"name": "KERNEL_HB_PORT", "value": "7000"}]),
            ReconcileSettings(
                cluster_domain="corp.example",
                default_ports=KernelPorts(shell=1, iopub=2, stdin=3, hb=4, control=5),  # noqa: S604
            ),
            FRESH.kernel_id,
            '{"shell_port":1,"stdin_port":3,"iopub_port":2,"control_port":5,"hb_port":7000,'
            '"ip":"nb.team.svc.corp.example","key":"6f1e2d3c-aaaa-4bbb-8ccc-dddddddddddd",'
            '"transport":"tcp","signature_scheme":"hmac-sha256","kernel_name":""}',
        ),
        (
            make_kernel(),
            SECRET_MODE,
            FRESH.kernel_id,
            '{"shell_port":52317,"stdin_port":52319,"iopub_port":52318,"control_port":52321,'
            '"hb_port":52320,"ip":"nb.team.svc.cluster.local","transport":"tcp",'
            '"signature_scheme":"hmac-sha256","kernel_name":""}',
        ),
        (
            make_kernel(env=[{"name": "KERNEL_ID", "value": ""}]),
            KERNEL_ID_MODE,
            FRESH.kernel_id,
            '{"shell_port":52317,"stdin_port":52319,"iopub_port":52318,"control_port":52321,'
            '"hb_port":52320,"ip":"nb.team.svc.cluster.local",'
            '"key":"6f1e2d3c-aaaa-4bbb-8ccc-dddddddddddd","transport":"tcp",'
            '"signature_scheme":"hmac-sha256","kernel_name":""}',
        ),
    ],
    ids=[
        "fresh-id-default-ports",
        "id-and-ports-from-env",
        "partial-env-custom-defaults-and-domain",
        "secret-mode-no-key",
        "empty-env-id-gets-fresh",
    ],
)
def test_new_kernel_gets_identity_annotations(
    kernel: Any, settings: ReconcileSettings, kernel_id: str, info: str
) -> None:
    desired = run(kernel, settings=settings)

    assert desired.annotations == {ID_ANNOTATION: kernel_id, INFO_ANNOTATION: info}
    assert list(json.loads(info)) == [
        "shell_port",
        "stdin_port",
        "iopub_port",
        "control_port",
        "hb_port",
        "ip",
        *(["key"] if settings.key_mode is KeyMode.KERNEL_ID else []),
        "transport",
        "signature_scheme",
        "kernel_name",
    ]
    assert main_env(desired)["KERNEL_ID"] == {"name": "KERNEL_ID", "value": kernel_id}
    assert desired.status["kernelID"] == kernel_id


def test_secret_mode_creates_owned_secret_and_refers_the_pod_to_it() -> None:
    desired = run(make_kernel(), settings=SECRET_MODE)

    assert desired.secret == {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": "nb-connection",
            "namespace": NS,
            "labels": {NAME_LABEL: NAME},
            "ownerReferences": [OWNER_REF],
        },
        "stringData": {"key": FRESH.key},
    }
    assert main_env(desired)["KERNEL_KEY"] == {
        "name": "KERNEL_KEY",
        "valueFrom": {"secretKeyRef": {"name": "nb-connection", "key": "key"}},
    }
    assert desired.identity is not None
    assert desired.identity.key == FRESH.key
    assert FRESH.key not in json.dumps(desired.annotations)
    assert FRESH.key not in json.dumps(desired.pod)
    assert FRESH.key not in repr(desired)


def test_kernel_id_mode_has_no_secret_and_no_key_env() -> None:
    desired = run(make_kernel())

    assert desired.secret is None
    assert "KERNEL_KEY" not in main_env(desired)


@pytest.mark.parametrize(
    ("annotations", "settings", "env", "expected_key"),
    [
        (persisted_annotations(), KERNEL_ID_MODE, (), PERSISTED_ID),
        (
            persisted_annotations(),
            KERNEL_ID_MODE,
            [
                {"name": "KERNEL_ID", "value": "edited-later"},
                {"name": "KERNEL_SHELL_PORT", "value": "9999"},
            ],
            PERSISTED_ID,
        ),
        (persisted_annotations(key=None), KERNEL_ID_MODE, (), PERSISTED_ID),
        (persisted_annotations(key=None), SECRET_MODE, (), ""),
    ],
    ids=[
        "kernel-id-mode",
        "env-edited-after-decision",
        "keyless-json-in-kernel-id-mode",
        "secret-mode",
    ],
)
def test_persisted_identity_is_reused_for_a_recreated_pod(
    annotations: dict[str, str],
    settings: ReconcileSettings,
    env: Sequence[Mapping[str, Any]],
    expected_key: str,
) -> None:
    kernel = make_kernel(annotations=annotations, env=env)

    desired = run(kernel, settings=settings)

    assert desired.annotations is None
    assert desired.identity == Identity(
        kernel_id=PERSISTED_ID, ports=PERSISTED_PORTS, key=expected_key
    )
    env_by_name = main_env(desired)
    assert env_by_name["KERNEL_ID"]["value"] == PERSISTED_ID
    assert [env_by_name[e["name"]]["value"] for e in DEFAULT_PORT_ENV] == [
        "41001",
        "41002",
        "41003",
        "41004",
        "41005",
    ]
    assert desired.service is not None
    assert [p["port"] for p in desired.service["spec"]["ports"]] == [
        41001,
        41002,
        41003,
        41004,
        41005,
    ]
    assert desired.status["kernelID"] == PERSISTED_ID
    assert FRESH.kernel_id not in json.dumps(desired.pod)


def test_secret_mode_recreation_never_creates_a_secret_with_an_empty_key() -> None:
    # The annotation carries no key in secret mode; if the Secret is gone (or its creation
    # failed after the annotations were written) the Secret built must still hold a real key.
    kernel = make_kernel(annotations=persisted_annotations(key=None))

    desired = run(kernel, settings=SECRET_MODE)

    assert desired.secret is not None
    assert desired.secret["stringData"] == {"key": FRESH.key}
    assert main_env(desired)["KERNEL_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "nb-connection"


@pytest.mark.parametrize(
    "info",
    [
        "not json",
        '{"shell_port":41001}',
        persisted_info(key=PERSISTED_ID).replace("41001", '"forty"'),
        "[]",
        "",
    ],
    ids=["garbage", "missing-ports", "port-not-a-number", "json-array", "empty"],
)
def test_unreadable_connection_info_is_decided_again(info: str) -> None:
    # The ports and key are decided again; the id annotation alone is kept (its creator, e.g.
    # the provisioner of a pooled Kernel that has no template to carry KERNEL_ID, may set it).
    kernel = make_kernel(annotations={ID_ANNOTATION: PERSISTED_ID, INFO_ANNOTATION: info})

    desired = run(kernel)

    assert desired.annotations is not None
    assert desired.annotations[ID_ANNOTATION] == PERSISTED_ID
    assert json.loads(desired.annotations[INFO_ANNOTATION])["shell_port"] == 52317
    assert desired.pod is not None


@pytest.mark.parametrize(
    ("kernel", "settings", "expected"),
    [
        (
            make_kernel(),
            KERNEL_ID_MODE,
            (Identity(FRESH.kernel_id, DEFAULT_PORTS, key=FRESH.kernel_id), True),
        ),
        (
            make_kernel(),
            SECRET_MODE,
            (Identity(FRESH.kernel_id, DEFAULT_PORTS, key=FRESH.key), True),
        ),
        (
            make_kernel(env=[{"name": "KERNEL_ID", "value": "given"}]),
            KERNEL_ID_MODE,
            (Identity("given", DEFAULT_PORTS, key="given"), True),
        ),
        (
            make_kernel(annotations=persisted_annotations()),
            KERNEL_ID_MODE,
            (Identity(PERSISTED_ID, PERSISTED_PORTS, key=PERSISTED_ID), False),
        ),
        (
            make_kernel(annotations={ID_ANNOTATION: PERSISTED_ID}),
            KERNEL_ID_MODE,
            (Identity(PERSISTED_ID, DEFAULT_PORTS, key=PERSISTED_ID), True),
        ),
    ],
    ids=["new", "new-secret-mode", "env-id", "persisted", "id-annotation-without-info"],
)
def test_decide_identity(
    kernel: Any, settings: ReconcileSettings, expected: tuple[Identity, bool]
) -> None:
    assert decide_identity(kernel, settings=settings, fresh=FRESH) == expected


PORT_FROM_CONFIGMAP = {
    "name": "KERNEL_IOPUB_PORT",
    "valueFrom": {"configMapKeyRef": {"name": "ports", "key": "iopub"}},
}


def test_decide_identity_rejects_a_port_given_through_value_from() -> None:
    kernel = make_kernel(env=[PORT_FROM_CONFIGMAP])

    with pytest.raises(InvalidKernel) as info:
        decide_identity(kernel, settings=KERNEL_ID_MODE, fresh=FRESH)

    assert info.value.reason == "InvalidPortEnv"
    assert "KERNEL_IOPUB_PORT" in str(info.value)


@pytest.mark.parametrize(
    ("status", "expected_events"),
    [
        (None, ("InvalidPortEnv",)),
        (stored_ready("PodNotCreated"), ("InvalidPortEnv",)),
        (stored_ready("InvalidPortEnv"), ()),
    ],
    ids=["first-time", "other-stored-reason", "already-reported"],
)
def test_port_from_value_from_blocks_the_kernel(
    status: Mapping[str, Any] | None, expected_events: tuple[str, ...]
) -> None:
    kernel = make_kernel(env=[PORT_FROM_CONFIGMAP], status=status)

    desired = run(kernel)

    assert desired.pod is None
    assert desired.service is None
    assert desired.secret is None
    assert desired.annotations is None
    assert desired.delete_kernel is False
    ready = ready_condition(desired.status)
    assert (ready["status"], ready["reason"]) == ("False", "InvalidPortEnv")
    assert "KERNEL_IOPUB_PORT" in ready["message"]
    assert desired.status["readyReplicas"] == 0
    assert tuple(e.reason for e in desired.events) == expected_events
    assert all(e.type == "Warning" for e in desired.events)


# ------------------------------------------------------------------------------------ Pod
def test_pod_metadata_spec_and_owner() -> None:
    kernel = make_kernel(
        labels={"team": "data", "tier": "kernel-user"},
        annotations={"example.com/owner": "ana"},
        template_metadata={"labels": {"tier": "gpu"}, "annotations": {"prometheus.io/port": "9"}},
    )

    pod = build_pod(
        kernel, Identity(FRESH.kernel_id, DEFAULT_PORTS, FRESH.kernel_id), KERNEL_ID_MODE
    )

    assert pod == {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": NAME,
            "namespace": NS,
            "labels": {"team": "data", "tier": "gpu", NAME_LABEL: NAME},
            "annotations": {"example.com/owner": "ana", "prometheus.io/port": "9"},
            "ownerReferences": [OWNER_REF],
        },
        "spec": {
            "containers": [
                {
                    "name": NAME,
                    "image": "quay.io/jupyter/base-notebook:2025-03",
                    "env": [{"name": "KERNEL_ID", "value": FRESH.kernel_id}, *DEFAULT_PORT_ENV],
                    "readinessProbe": {
                        "tcpSocket": {"port": 52317},
                        "periodSeconds": 2,
                        "failureThreshold": 3,
                    },
                }
            ],
            "restartPolicy": "Never",
        },
    }


@pytest.mark.parametrize(
    ("kernel_labels", "template_labels"),
    [
        ({NAME_LABEL: "someone-else"}, None),
        (None, {NAME_LABEL: "someone-else"}),
        ({NAME_LABEL: "a"}, {NAME_LABEL: "b"}),
    ],
    ids=["kernel-label", "template-label", "both"],
)
def test_user_labels_cannot_override_the_name_label(
    kernel_labels: dict[str, str] | None, template_labels: dict[str, str] | None
) -> None:
    kernel = make_kernel(
        labels=kernel_labels,
        template_metadata={"labels": template_labels} if template_labels else None,
    )

    desired = run(kernel)

    assert desired.pod is not None
    assert desired.pod["metadata"]["labels"] == {NAME_LABEL: NAME}


def test_pod_annotations_skip_kubectl_and_kernel_keys_of_the_kernel() -> None:
    kernel = make_kernel(
        annotations={
            "kubectl.kubernetes.io/last-applied-configuration": '{"big": "json"}',
            "example.com/kernel-hint": "x",
            "example.com/owner": "ana",
            **persisted_annotations(),
        },
        template_metadata={"annotations": {"prometheus.io/scrape": "true"}},
    )

    desired = run(kernel)

    assert desired.pod is not None
    assert desired.pod["metadata"]["annotations"] == {
        "example.com/owner": "ana",
        "prometheus.io/scrape": "true",
    }


def test_pod_without_any_annotation_has_no_annotations_key() -> None:
    desired = run(make_kernel())

    assert desired.pod is not None
    assert "annotations" not in desired.pod["metadata"]


def test_user_env_is_kept_in_place_and_ours_appended() -> None:
    user_env = [
        {"name": "FOO", "value": "bar"},
        {"name": "KERNEL_SHELL_PORT", "value": "6000"},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
    ]
    desired = run(make_kernel(env=user_env))

    assert desired.pod is not None
    assert desired.pod["spec"]["containers"][0]["env"] == [
        {"name": "FOO", "value": "bar"},
        {"name": "KERNEL_SHELL_PORT", "value": "6000"},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "KERNEL_ID", "value": FRESH.kernel_id},
        {"name": "KERNEL_IOPUB_PORT", "value": "52318"},
        {"name": "KERNEL_STDIN_PORT", "value": "52319"},
        {"name": "KERNEL_HB_PORT", "value": "52320"},
        {"name": "KERNEL_CONTROL_PORT", "value": "52321"},
    ]
    probe = desired.pod["spec"]["containers"][0]["readinessProbe"]
    assert probe["tcpSocket"] == {"port": 6000}


@pytest.mark.parametrize(
    ("idle_timeout", "user_env", "default", "expected"),
    [
        (600, None, 0, "600"),
        (600, "30", 0, "30"),
        (None, "30", 120, "30"),
        (None, None, 120, "120"),
        (0, None, 120, "0"),
        (None, None, 0, None),
    ],
    ids=[
        "from-spec",
        "container-env-wins-over-spec",
        "container-env-wins-over-default",
        "controller-default",
        "explicit-zero-in-spec",
        "absent",
    ],
)
def test_idle_timeout_env(
    idle_timeout: int | None, user_env: str | None, default: int, expected: str | None
) -> None:
    env = [{"name": "KERNEL_IDLE_TIMEOUT", "value": user_env}] if user_env is not None else []
    kernel = make_kernel(idle_timeout=idle_timeout, env=env)

    desired = run(kernel, settings=ReconcileSettings(default_idle_timeout=default))

    env_by_name = main_env(desired)
    if expected is None:
        assert "KERNEL_IDLE_TIMEOUT" not in env_by_name
    else:
        assert env_by_name["KERNEL_IDLE_TIMEOUT"] == {
            "name": "KERNEL_IDLE_TIMEOUT",
            "value": expected,
        }


@pytest.mark.parametrize(
    ("pod_spec", "expected"),
    [({}, "Never"), ({"restartPolicy": "OnFailure"}, "OnFailure")],
    ids=["defaulted", "on-failure-kept"],
)
def test_restart_policy(pod_spec: dict[str, Any], expected: str) -> None:
    desired = run(make_kernel(pod_spec=pod_spec))

    assert desired.pod is not None
    assert desired.pod["spec"]["restartPolicy"] == expected


USER_PROBE = {"httpGet": {"path": "/healthz", "port": 8888}}


@pytest.mark.parametrize(
    ("container", "probe_on", "expected"),
    [
        (
            None,
            True,
            {"tcpSocket": {"port": 52317}, "periodSeconds": 2, "failureThreshold": 3},
        ),
        (None, False, None),
        ({"readinessProbe": USER_PROBE}, True, USER_PROBE),
        ({"readinessProbe": USER_PROBE}, False, USER_PROBE),
    ],
    ids=["added", "turned-off", "user-probe-kept", "user-probe-kept-when-off"],
)
def test_readiness_probe(
    container: dict[str, Any] | None, probe_on: bool, expected: dict[str, Any] | None
) -> None:
    desired = run(
        make_kernel(container=container), settings=ReconcileSettings(readiness_probe=probe_on)
    )

    assert desired.pod is not None
    assert desired.pod["spec"]["containers"][0].get("readinessProbe") == expected


def test_other_containers_and_pod_spec_fields_are_untouched() -> None:
    sidecar = {
        "name": "proxy",
        "image": "envoy:1",
        "env": [{"name": "KERNEL_ID", "value": "not-ours"}],
    }
    pod_spec = {
        "schedulingGates": [{"name": "example.com/quota"}],
        "hostUsers": False,
        "initContainers": [{"name": "sync", "image": "busybox", "restartPolicy": "Always"}],
    }

    desired = run(make_kernel(sidecars=[sidecar], pod_spec=pod_spec))

    assert desired.pod is not None
    spec = desired.pod["spec"]
    assert spec["containers"][1] == sidecar
    assert [c["name"] for c in spec["containers"]] == [NAME, "proxy"]
    for field, value in pod_spec.items():
        assert spec[field] == value


def test_desired_state_leaves_the_kernel_unchanged_and_returns_plain_objects() -> None:
    kernel = make_kernel(
        env=[{"name": "FOO", "value": "bar"}],
        sidecars=[{"name": "proxy", "image": "envoy:1"}],
        labels={"team": "data"},
        annotations={"example.com/owner": "ana"},
        template_metadata={"labels": {"tier": "gpu"}},
    )
    before = thaw(kernel)

    desired = run(kernel, settings=SECRET_MODE)

    assert thaw(kernel) == before
    assert desired.pod is not None
    assert desired.secret is not None
    # The results are the caller's to change (plain, not frozen, not shared with the input).
    desired.pod["spec"]["containers"][0]["env"].append({"name": "X", "value": "1"})
    desired.pod["metadata"]["labels"]["x"] = "1"
    desired.pod["spec"]["containers"][1]["image"] = "changed"
    assert thaw(kernel) == before


# -------------------------------------------------------------------------------- Service
def test_build_service() -> None:
    service = build_service(
        make_kernel(), Identity(FRESH.kernel_id, PERSISTED_PORTS, FRESH.kernel_id)
    )

    assert service == {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": NAME,
            "namespace": NS,
            "labels": {NAME_LABEL: NAME},
            "ownerReferences": [OWNER_REF],
        },
        "spec": {
            "type": "ClusterIP",
            "selector": {NAME_LABEL: NAME},
            "ports": [
                {"name": "shell-port", "port": 41001, "targetPort": 41001, "protocol": "TCP"},
                {"name": "iopub-port", "port": 41002, "targetPort": 41002, "protocol": "TCP"},
                {"name": "stdin-port", "port": 41003, "targetPort": 41003, "protocol": "TCP"},
                {"name": "hb-port", "port": 41004, "targetPort": 41004, "protocol": "TCP"},
                {"name": "control-port", "port": 41005, "targetPort": 41005, "protocol": "TCP"},
            ],
        },
    }


def test_build_secret_is_named_after_the_kernel() -> None:
    secret = build_secret(make_kernel(), Identity(FRESH.kernel_id, DEFAULT_PORTS, "k"))

    assert secret["metadata"]["name"] == "nb-connection"
    assert secret["metadata"]["ownerReferences"] == [OWNER_REF]
    assert secret["stringData"] == {"key": "k"}


DESIRED_SERVICE = build_service(
    make_kernel(), Identity(FRESH.kernel_id, DEFAULT_PORTS, FRESH.kernel_id)
)


def _without_protocol() -> list[dict[str, Any]]:
    return [{k: v for k, v in p.items() if k != "protocol"} for p in api_service()["spec"]["ports"]]


@pytest.mark.parametrize(
    "cached",
    [
        api_service(),
        api_service(ports=list(reversed(api_service()["spec"]["ports"]))),
        api_service(ports=_without_protocol()),
    ],
    ids=["as-returned-by-api-server", "ports-reordered", "protocol-omitted"],
)
def test_service_without_drift(cached: Any) -> None:
    assert service_drift(DESIRED_SERVICE, cached) is None


def _ports_with(index: int, **changes: Any) -> list[dict[str, Any]]:
    ports = thaw(api_service()["spec"]["ports"])
    ports[index].update(changes)
    return ports


@pytest.mark.parametrize(
    ("cached", "expected"),
    [
        (
            api_service(ports=_ports_with(0, port=60000)),
            {"ports": DESIRED_SERVICE["spec"]["ports"]},
        ),
        (
            api_service(ports=_ports_with(2, targetPort=1234)),
            {"ports": DESIRED_SERVICE["spec"]["ports"]},
        ),
        (
            api_service(ports=_ports_with(1, name="renamed")),
            {"ports": DESIRED_SERVICE["spec"]["ports"]},
        ),
        (
            api_service(ports=_ports_with(4, protocol="UDP")),
            {"ports": DESIRED_SERVICE["spec"]["ports"]},
        ),
        (
            api_service(ports=thaw(api_service()["spec"]["ports"])[:4]),
            {"ports": DESIRED_SERVICE["spec"]["ports"]},
        ),
        (
            api_service(ports=[*api_service()["spec"]["ports"], {"name": "x", "port": 1}]),
            {"ports": DESIRED_SERVICE["spec"]["ports"]},
        ),
        (
            api_service(type="NodePort", ports=_ports_with(0, nodePort=30001)),
            {"type": "ClusterIP"},
        ),
        (
            api_service(selector={NAME_LABEL: NAME, "app": "other"}),
            {"selector": {"app": None, NAME_LABEL: NAME}},
        ),
        (
            api_service(selector={"app": "other"}),
            {"selector": {"app": None, NAME_LABEL: NAME}},
        ),
        (api_service(selector={NAME_LABEL: "other"}), {"selector": {NAME_LABEL: NAME}}),
        (api_service(selector=None), {"selector": {NAME_LABEL: NAME}}),
        (
            api_service(type="LoadBalancer", selector={"a": "b"}),
            {"type": "ClusterIP", "selector": {"a": None, NAME_LABEL: NAME}},
        ),
    ],
    ids=[
        "port-changed",
        "target-port-changed",
        "port-renamed",
        "protocol-changed",
        "port-removed",
        "port-added",
        "type-node-port",
        "foreign-selector-key",
        "selector-replaced",
        "selector-value-changed",
        "selector-removed",
        "type-and-selector",
    ],
)
def test_service_drift_patches_only_fields_we_own(cached: Any, expected: dict[str, Any]) -> None:
    assert service_drift(DESIRED_SERVICE, cached) == {"spec": expected}


def test_desired_state_offers_the_service_for_create_or_correction() -> None:
    kernel = make_kernel()
    desired_missing = run(kernel)
    desired_present = run(kernel, service=api_service(), pod=make_pod())

    assert desired_missing.service == DESIRED_SERVICE
    assert desired_present.service == DESIRED_SERVICE


# ------------------------------------------------------------------------ existing children
@pytest.mark.parametrize("settings", [KERNEL_ID_MODE, SECRET_MODE], ids=["kernel-id", "secret"])
def test_owned_pod_present_means_nothing_to_create(settings: ReconcileSettings) -> None:
    desired = run(
        make_kernel(annotations=persisted_annotations()),
        pod=make_pod(phase="Running", pod_ip="10.1.2.3"),
        service=api_service(),
        settings=settings,
    )

    assert desired.pod is None
    assert desired.secret is None
    assert desired.annotations is None
    assert desired.delete_kernel is False


FOREIGN_REFS = {
    "other-uid": [{**OWNER_REF, "uid": OTHER_UID}],
    "no-owner": [],
    "owner-not-controller": [{**OWNER_REF, "controller": False}],
    "controlled-by-replicaset": [
        {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "name": "web",
            "uid": UID,
            "controller": True,
        }
    ],
}


def _foreign_pod(refs: list[dict[str, Any]]) -> Any:
    pod = thaw(make_pod(phase="Running"))
    pod["metadata"]["ownerReferences"] = refs
    return freeze(pod)


def _foreign_service(refs: list[dict[str, Any]]) -> Any:
    service = thaw(api_service())
    service["metadata"]["ownerReferences"] = refs
    return freeze(service)


@pytest.mark.parametrize("refs", list(FOREIGN_REFS.values()), ids=list(FOREIGN_REFS))
@pytest.mark.parametrize(
    ("which", "reason"),
    [("pod", "PodNameConflict"), ("service", "ServiceNameConflict")],
    ids=["pod", "service"],
)
def test_child_not_controlled_by_the_kernel_blocks_it(
    refs: list[dict[str, Any]], which: str, reason: str
) -> None:
    if which == "pod":
        observed = {"pod": _foreign_pod(refs)}
    else:
        observed = {"service": _foreign_service(refs)}

    desired = run(make_kernel(), settings=SECRET_MODE, **observed)

    assert desired.pod is None
    assert desired.service is None
    assert desired.secret is None
    assert desired.delete_kernel is False
    ready = ready_condition(desired.status)
    assert (ready["status"], ready["reason"]) == ("False", reason)
    assert NAME in ready["message"]
    assert desired.status["readyReplicas"] == 0
    assert desired.events == (EventSpec("Warning", reason, ready["message"]),)


def test_name_conflict_event_is_not_repeated() -> None:
    kernel = make_kernel(status=stored_ready("PodNameConflict"))

    desired = run(kernel, pod=_foreign_pod(FOREIGN_REFS["other-uid"]))

    assert ready_condition(desired.status)["reason"] == "PodNameConflict"
    assert desired.events == ()


# --------------------------------------------------------------------------------- status
def _running_container(*, ready: bool) -> dict[str, Any]:
    return container_status({"running": {"startedAt": T_STARTED}}, ready=ready)


def _waiting_container(reason: str, message: str) -> dict[str, Any]:
    return container_status({"waiting": {"reason": reason, "message": message}})


def _terminated_container(code: int, reason: str) -> dict[str, Any]:
    return container_status(
        {
            "terminated": {
                "exitCode": code,
                "reason": reason,
                "startedAt": T_STARTED,
                "finishedAt": T_FINISHED,
                "containerID": "containerd://abc",
            }
        }
    )


NOT_READY = cond(
    "Ready",
    "False",
    T_INIT,
    reason="ContainersNotReady",
    message="containers with unready status: [nb]",
)
CONTAINERS_NOT_READY = cond(
    "ContainersReady",
    "False",
    T_INIT,
    reason="ContainersNotReady",
    message="containers with unready status: [nb]",
)
SCHEDULED = cond("PodScheduled", "True", T_SCHEDULED)
INITIALIZED = cond("Initialized", "True", T_INIT)
STARTED_CONDS = [INITIALIZED, NOT_READY, CONTAINERS_NOT_READY, SCHEDULED]
PULL_MESSAGE = 'failed to pull "quay.io/x/nope:1": not found'
BACKOFF_MESSAGE = 'Back-off pulling image "quay.io/x/nope:1"'
UNSCHEDULABLE_MESSAGE = "0/3 nodes are available: 3 Insufficient cpu."

STATUS_CASES: dict[str, tuple[Any, tuple[str, str, int], str]] = {
    # id: (pod, (Ready status, reason, readyReplicas), message fragment)
    "no-pod": (None, ("False", "PodNotCreated", 0), "does not exist"),
    "pending-no-container-status": (
        make_pod(phase="Pending", conditions=[SCHEDULED]),
        ("False", "PodPending", 0),
        "pending",
    ),
    "err-image-pull": (
        make_pod(
            conditions=STARTED_CONDS, statuses=[_waiting_container("ErrImagePull", PULL_MESSAGE)]
        ),
        ("False", "ImagePullError", 0),
        PULL_MESSAGE,
    ),
    "image-pull-backoff": (
        make_pod(
            conditions=STARTED_CONDS,
            statuses=[_waiting_container("ImagePullBackOff", BACKOFF_MESSAGE)],
        ),
        ("False", "ImagePullError", 0),
        BACKOFF_MESSAGE,
    ),
    "unschedulable": (
        make_pod(
            conditions=[
                cond(
                    "PodScheduled",
                    "False",
                    T_SCHEDULED,
                    reason="Unschedulable",
                    message=UNSCHEDULABLE_MESSAGE,
                )
            ]
        ),
        ("False", "Unschedulable", 0),
        UNSCHEDULABLE_MESSAGE,
    ),
    "running-not-ready": (
        make_pod(
            phase="Running",
            conditions=STARTED_CONDS,
            statuses=[_running_container(ready=False)],
            pod_ip="10.1.2.3",
        ),
        ("False", "KernelNotReady", 0),
        "unready",
    ),
    "running-ready": (
        make_pod(
            phase="Running",
            conditions=[
                cond("example.com/gate", "True", T_PROBED, probed=T_PROBED),
                INITIALIZED,
                cond("Ready", "True", T_READY),
                cond("ContainersReady", "True", T_READY),
                SCHEDULED,
            ],
            statuses=[_running_container(ready=True)],
            pod_ip="10.1.2.3",
        ),
        ("True", "KernelReady", 1),
        "accepts connections",
    ),
    "succeeded": (
        make_pod(
            phase="Succeeded",
            conditions=[
                INITIALIZED,
                cond("Ready", "False", T_FINISHED, reason="PodCompleted"),
                SCHEDULED,
            ],
            statuses=[_terminated_container(0, "Completed")],
            pod_ip="10.1.2.3",
        ),
        ("False", "KernelExited", 0),
        "exited",
    ),
    "failed-exit-1": (
        make_pod(
            phase="Failed",
            conditions=[
                INITIALIZED,
                cond("Ready", "False", T_FINISHED, reason="PodFailed"),
                SCHEDULED,
            ],
            statuses=[_terminated_container(1, "Error")],
            pod_ip="10.1.2.3",
        ),
        ("False", "KernelFailed", 0),
        "exit code 1",
    ),
    "unknown": (
        make_pod(phase="Unknown", conditions=[SCHEDULED]),
        ("False", "PodUnknown", 0),
        "unknown",
    ),
}

TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})")


@pytest.mark.parametrize(
    ("pod", "ready", "fragment"), list(STATUS_CASES.values()), ids=list(STATUS_CASES)
)
def test_status_from_pod(pod: Any, ready: tuple[str, str, int], fragment: str) -> None:
    kernel = make_kernel(annotations=persisted_annotations())

    status = run(kernel, pod=pod, service=api_service()).status

    ready_status, reason, ready_replicas = ready
    kernel_ready = status["conditions"][0]
    assert kernel_ready["type"] == "Ready"
    assert (kernel_ready["status"], kernel_ready["reason"]) == (ready_status, reason)
    assert fragment in kernel_ready["message"]
    assert status["readyReplicas"] == ready_replicas
    assert status["observedGeneration"] == 3
    assert status["kernelID"] == PERSISTED_ID
    pod_status = (pod or {}).get("status") or {}
    assert status.get("phase") == (pod_status.get("phase") if pod is not None else None)
    assert status.get("podIP") == pod_status.get("podIP")
    states = [c["state"] for c in pod_status.get("containerStatuses") or ()]
    assert status.get("containerState") == (states[0] if states else None)

    # Pod conditions mirrored; null fields (lastProbeTime) left out; Ready replaced by ours.
    pod_conditions = pod_status.get("conditions") or []
    assert status["conditions"][1:] == [
        {k: v for k, v in c.items() if v is not None}
        for c in pod_conditions
        if c["type"] != "Ready"
    ]
    pod_ready = [c for c in pod_conditions if c["type"] == "Ready"]
    if pod_ready:
        assert kernel_ready["lastTransitionTime"] == pod_ready[0]["lastTransitionTime"]
    else:
        assert "lastTransitionTime" not in kernel_ready
    assert "lastProbeTime" not in kernel_ready

    # No invented timestamps: every one in the status comes from the Pod.
    assert set(TIMESTAMP.findall(json.dumps(status))) <= set(
        TIMESTAMP.findall(json.dumps(pod or {}))
    )


def test_status_of_a_ready_pod_in_full() -> None:
    pod, _, _ = STATUS_CASES["running-ready"]

    status = run(make_kernel(annotations=persisted_annotations()), pod=pod).status

    assert status == {
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "KernelReady",
                "message": "the kernel accepts connections",
                "lastTransitionTime": T_READY,
            },
            {
                "type": "example.com/gate",
                "status": "True",
                "lastTransitionTime": T_PROBED,
                "lastProbeTime": T_PROBED,
            },
            {"type": "Initialized", "status": "True", "lastTransitionTime": T_INIT},
            {"type": "ContainersReady", "status": "True", "lastTransitionTime": T_READY},
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": T_SCHEDULED},
        ],
        "readyReplicas": 1,
        "phase": "Running",
        "podIP": "10.1.2.3",
        "kernelID": PERSISTED_ID,
        "connection": {
            "host": HOST,
            "shellPort": 41001,
            "iopubPort": 41002,
            "stdinPort": 41003,
            "hbPort": 41004,
            "controlPort": 41005,
            "transport": "tcp",
            "signatureScheme": "hmac-sha256",
        },
        "containerState": {"running": {"startedAt": T_STARTED}},
        "observedGeneration": 3,
    }


@pytest.mark.parametrize(
    "pod",
    [None, STATUS_CASES["running-ready"][0]],
    ids=["no-pod", "ready-pod"],
)
@pytest.mark.parametrize("settings", [KERNEL_ID_MODE, SECRET_MODE], ids=["kernel-id", "secret"])
def test_status_never_carries_the_key(settings: ReconcileSettings, pod: Any) -> None:
    desired = run(make_kernel(), pod=pod, settings=settings)
    assert desired.identity is not None
    key = desired.identity.key
    dumped = json.dumps(desired.status)

    assert not {k for k in all_keys(desired.status) if k.lower() == "key"}
    expected_connection = {
        "host": HOST,
        "shellPort": 52317,
        "iopubPort": 52318,
        "stdinPort": 52319,
        "hbPort": 52320,
        "controlPort": 52321,
        "transport": "tcp",
        "signatureScheme": "hmac-sha256",
    }
    if settings.key_mode is KeyMode.SECRET:
        expected_connection["keySecret"] = "nb-connection"
        assert key == FRESH.key
        assert key not in dumped
    else:
        # In kernel-id mode the key *is* the kernel id, which the status publishes as kernelID
        # (SPEC §2); it must appear there and nowhere else.
        assert key == FRESH.kernel_id
        assert dumped.count(key) == 1
        assert desired.status["kernelID"] == key
    assert desired.status["connection"] == expected_connection


def test_status_without_generation_has_no_observed_generation() -> None:
    kernel = thaw(make_kernel())
    del kernel["metadata"]["generation"]

    status = run(freeze(kernel)).status

    assert "observedGeneration" not in status


# -------------------------------------------------------------------------------- culling
def _failed_pod(*, finished_at: str | None, ready_since: str | None = None) -> Any:
    terminated: dict[str, Any] = {"exitCode": 1, "reason": "Error", "startedAt": T_STARTED}
    if finished_at is not None:
        terminated["finishedAt"] = finished_at
    conditions = [SCHEDULED]
    if ready_since is not None:
        conditions.append(cond("Ready", "False", ready_since, reason="PodFailed"))
    return make_pod(
        phase="Failed",
        conditions=conditions,
        statuses=[container_status({"terminated": terminated})],
    )


def test_succeeded_pod_culls_the_kernel() -> None:
    pod, _, _ = STATUS_CASES["succeeded"]

    desired = run(make_kernel(annotations=persisted_annotations()), pod=pod, service=api_service())

    assert desired.delete_kernel is True
    assert desired.requeue_after is None
    assert desired.pod is None
    assert [(e.type, e.reason) for e in desired.events] == [("Normal", "Culled")]


def _being_deleted(pod: Any) -> Any:
    deleted = thaw(pod)
    deleted["metadata"]["deletionTimestamp"] = ago(1)
    return freeze(deleted)


@pytest.mark.parametrize(
    "pod",
    [
        _being_deleted(STATUS_CASES["succeeded"][0]),
        _being_deleted(_failed_pod(finished_at=ago(7200))),
        _being_deleted(make_pod(phase="Running")),
    ],
    ids=["exited-0", "failed-long-ago", "still-running"],
)
def test_a_pod_being_deleted_is_replaced_not_read_as_culling_or_failure(pod: Any) -> None:
    # A restart (the provisioner) or `kubectl delete pod`: the kernel ends because its Pod is
    # deleted; once the Pod is gone it is created again, with the same identity.
    kernel = make_kernel(annotations=persisted_annotations(), status=stored_ready("KernelReady"))

    desired = run(kernel, pod=pod, service=api_service())

    assert desired.delete_kernel is False
    assert desired.requeue_after is None
    assert desired.pod is None  # not while the old one is still there
    ready = ready_condition(desired.status)
    assert (ready["status"], ready["reason"]) == ("False", "PodTerminating")
    assert desired.status["readyReplicas"] == 0
    assert [e.reason for e in desired.events if e.type == "Warning"] == []


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        (None, [("Warning", "KernelFailed")]),
        (stored_ready("KernelReady"), [("Warning", "KernelFailed")]),
        (stored_ready("KernelFailed"), []),
    ],
    ids=["no-status", "was-ready", "already-reported"],
)
def test_failed_pod_warns_once(stored: Mapping[str, Any] | None, expected: list[Any]) -> None:
    kernel = make_kernel(annotations=persisted_annotations(), status=stored)

    desired = run(kernel, pod=_failed_pod(finished_at=ago(60)))

    assert [(e.type, e.reason) for e in desired.events] == expected
    for event in desired.events:
        assert "exit code 1" in event.message
    assert desired.delete_kernel is False
    assert desired.pod is None


@pytest.mark.parametrize(
    ("ttl", "pod", "delete", "requeue_after"),
    [
        (3600.0, _failed_pod(finished_at=ago(600)), False, 3000.0),
        (3600.0, _failed_pod(finished_at=ago(3599)), False, 1.0),
        (3600.0, _failed_pod(finished_at=ago(3600)), True, None),
        (3600.0, _failed_pod(finished_at=ago(7200)), True, None),
        (0.0, _failed_pod(finished_at=ago(0)), True, None),
        (0.0, _failed_pod(finished_at=ago(-5)), True, None),
        (3600.0, _failed_pod(finished_at=ago(-60)), False, 3600.0),
        (3600.0, _failed_pod(finished_at=None, ready_since=ago(100)), False, 3500.0),
    ],
    ids=[
        "ten-minutes-ago",
        "one-second-left",
        "exactly-ttl-ago",
        "two-hours-ago",
        "ttl-zero",
        "ttl-zero-node-clock-ahead",
        "node-clock-ahead-waits-at-most-ttl",
        "ready-transition-when-no-finished-at",
    ],
)
def test_failed_kernel_ttl(ttl: float, pod: Any, delete: bool, requeue_after: float | None) -> None:
    kernel = make_kernel(annotations=persisted_annotations(), status=stored_ready("KernelFailed"))

    desired = run(kernel, pod=pod, settings=ReconcileSettings(failed_kernel_ttl=ttl))

    assert desired.delete_kernel is delete
    assert desired.requeue_after == requeue_after
    assert [e.reason for e in desired.events] == (["FailedKernelDeleted"] if delete else [])
    assert ready_condition(desired.status)["reason"] == "KernelFailed"


# ---------------------------------------------------------------------------- pod warnings
WARNING_EVENT = freeze(
    {
        "metadata": {"name": "nb.1", "namespace": NS, "uid": "ev-1"},
        "involvedObject": {"kind": "Pod", "name": NAME, "namespace": NS, "uid": "pod-uid-1"},
        "reason": "Failed",
        "message": "Failed to pull image",
        "type": "Warning",
        "count": 1,
    }
)


@pytest.mark.parametrize(
    ("pod", "expected"),
    [(make_pod(), (WARNING_EVENT,)), (None, ())],
    ids=["pod-exists", "no-pod"],
)
def test_pod_warnings_pass_through_only_with_a_pod(pod: Any, expected: tuple[Any, ...]) -> None:
    desired = run(make_kernel(), pod=pod, warnings=[WARNING_EVENT])

    assert desired.pod_warnings == expected
