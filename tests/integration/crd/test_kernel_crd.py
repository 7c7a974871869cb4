"""The Kernel CRD (config/crd/bases/jupyter.org_kernels.yaml) against the real API server:
it is what hack/crd/generate.py builds from this server, it rejects bad Kernels with clear
messages, keeps every PodSpec field, serves the deprecated versions with a warning, and is
installed (by the session fixture) with its names, columns and status subresource."""

from __future__ import annotations

import copy
import difflib
import itertools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from kubernetes import client

from crd.generate import DEFAULT_OUTPUT, build_crd, fetch_openapi, render
from eventually import eventually
from informers import JSON, Invalid, RequestInfo, Resource, ResourceClient, RestClient

GROUP = "jupyter.org"
CRD_NAME = "kernels.jupyter.org"
CRDS = Resource("apiextensions.k8s.io", "v1", "customresourcedefinitions", namespaced=False)
PORT_ENVS = (
    "KERNEL_SHELL_PORT",
    "KERNEL_IOPUB_PORT",
    "KERNEL_STDIN_PORT",
    "KERNEL_HB_PORT",
    "KERNEL_CONTROL_PORT",
)
PORT_RANGE = "must be an integer from 1 to 65535"

Kernel = dict[str, Any]


def kernels_resource(version: str = "v1") -> Resource:
    return Resource(GROUP, version, "kernels")


def new_kernel(name: str = "kernel", version: str = "v1") -> Kernel:
    """A minimal valid Kernel."""
    return {
        "apiVersion": f"{GROUP}/{version}",
        "kind": "Kernel",
        "metadata": {"name": name},
        "spec": {
            "template": {
                "spec": {"containers": [{"name": "kernel", "image": "elyra/kernel-py:3.2.3"}]}
            }
        },
    }


@dataclass(frozen=True)
class Answer:
    status: int
    warnings: list[str]
    body: dict[str, Any]


def raw_request(
    api_client: client.ApiClient, method: str, path: str, body: object = None
) -> Answer:
    """One request whose status, ``Warning`` headers and full body the test can read
    (``informers`` errors shorten long messages, and its client drops response headers)."""
    _, url, headers, _, _ = api_client.param_serialize(
        method=method,
        resource_path=path,
        header_params={"Accept": JSON, "Content-Type": JSON},
        auth_settings=["BearerToken"],
    )
    response = api_client.rest_client.pool_manager.request(
        method,
        url,
        body=None if body is None else json.dumps(body).encode(),
        headers=headers,
        retries=False,
        timeout=30,
    )
    return Answer(
        status=response.status,
        warnings=response.headers.getlist("Warning"),
        body=json.loads(response.data) if response.data else {},
    )


@pytest.fixture
def rest(api_client: client.ApiClient) -> RestClient:
    return RestClient(api_client, user_agent="tests/crd")


@pytest.fixture
def kernels(rest: RestClient, namespace: str) -> ResourceClient:
    return ResourceClient(rest, kernels_resource(), namespace=namespace)


def rejection(api_client: client.ApiClient, kernels: ResourceClient, kernel: Kernel) -> str:
    """Create ``kernel``; assert that the API server refuses it as invalid (422, which our
    client raises as ``Invalid``) and return the server's whole message."""
    with pytest.raises(Invalid):
        kernels.create(kernel)
    answer = raw_request(
        api_client, "POST", kernels.resource.path(namespace=kernels.namespace), kernel
    )
    assert answer.status == 422, answer.body
    assert answer.body["reason"] == "Invalid"
    message = answer.body["message"]
    assert isinstance(message, str)
    return message


# ------------------------------------------------------------------ generated file
def test_committed_crd_is_generated_from_this_api_server(kubeconfig: str) -> None:
    expected = render(build_crd(fetch_openapi(kubeconfig)))
    committed = DEFAULT_OUTPUT.read_text(encoding="utf-8")
    if committed != expected:
        diff = difflib.unified_diff(
            committed.splitlines(keepends=True),
            expected.splitlines(keepends=True),
            fromfile=f"{DEFAULT_OUTPUT.name} (committed)",
            tofile=f"{DEFAULT_OUTPUT.name} (generated)",
        )
        pytest.fail(
            f"{DEFAULT_OUTPUT} is not what hack/crd/generate.py builds from this API server"
            f" (edited by hand, or upstream changed): run `make crd`.\n"
            + "".join(itertools.islice(diff, 80))
        )


def test_generation_is_deterministic(kubeconfig: str) -> None:
    openapi = fetch_openapi(kubeconfig)
    first = render(build_crd(openapi))
    assert render(build_crd(copy.deepcopy(openapi))) == first
    assert "&id" not in first and "*id" not in first  # no YAML anchors or aliases


# ----------------------------------------------------------------------- bad input
def _without_containers(k: Kernel) -> None:
    del k["spec"]["template"]["spec"]["containers"]


def _set_pod(key: str, value: object) -> Callable[[Kernel], None]:
    def edit(k: Kernel) -> None:
        k["spec"]["template"]["spec"][key] = value

    return edit


def _set_container(index: int, key: str, value: object) -> Callable[[Kernel], None]:
    def edit(k: Kernel) -> None:
        containers = k["spec"]["template"]["spec"]["containers"]
        while len(containers) <= index:
            containers.append({"name": f"c{len(containers)}", "image": "busybox"})
        containers[index][key] = value

    return edit


def _drop_image(k: Kernel) -> None:
    del k["spec"]["template"]["spec"]["containers"][0]["image"]


def _set_spec(key: str, value: object) -> Callable[[Kernel], None]:
    def edit(k: Kernel) -> None:
        k["spec"][key] = value

    return edit


def _drop_template(k: Kernel) -> None:
    del k["spec"]["template"]


def _drop_template_spec(k: Kernel) -> None:
    del k["spec"]["template"]["spec"]


def _drop_spec(k: Kernel) -> None:
    del k["spec"]


def _port_cases() -> Iterator[Any]:
    for env in PORT_ENVS:
        yield pytest.param(
            _set_container(0, "env", [{"name": env, "value": "shell"}]),
            ["spec.template.spec.containers[0].env[0]", env, PORT_RANGE],
            id=f"{env}=shell",
        )
        for value in ("0", "65536"):
            yield pytest.param(
                _set_container(
                    0, "env", [{"name": "A", "value": "x"}, {"name": env, "value": value}]
                ),
                ["spec.template.spec.containers[0].env[1]", f'{env} {PORT_RANGE}, not "{value}"'],
                id=f"{env}={value}",
            )
    yield pytest.param(
        _set_container(1, "env", [{"name": "KERNEL_HB_PORT", "value": "-1"}]),
        ["spec.template.spec.containers[1].env[0]", f'KERNEL_HB_PORT {PORT_RANGE}, not "-1"'],
        id="port-in-second-container",
    )
    yield pytest.param(
        _set_container(0, "env", [{"name": "KERNEL_SHELL_PORT", "value": ""}]),
        ["spec.template.spec.containers[0].env[0]", PORT_RANGE],
        id="port-empty-without-valueFrom",
    )


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        pytest.param(_drop_spec, ["spec: Required value"], id="no-spec"),
        pytest.param(
            _drop_template,
            ["spec.template is required unless spec.poolRef names a KernelPool"],
            id="no-template",
        ),
        pytest.param(_drop_template_spec, ["spec.template.spec: Required value"], id="no-pod-spec"),
        pytest.param(
            _without_containers,
            ["spec.template.spec.containers: Required value"],
            id="no-containers",
        ),
        pytest.param(
            _set_pod("containers", []),
            ["spec.template.spec.containers", "should have at least 1 items"],
            id="containers-empty",
        ),
        pytest.param(
            _drop_image,
            ["spec.template.spec.containers[0].image is required and must not be empty"],
            id="image-missing",
        ),
        pytest.param(
            _set_container(0, "image", ""),
            ["spec.template.spec.containers[0].image is required and must not be empty"],
            id="image-empty",
        ),
        pytest.param(
            _set_pod("restartPolicy", "Always"),
            [
                'spec.template.spec.restartPolicy: Invalid value: "Always"',
                "spec.template.spec.restartPolicy must be Never or OnFailure",
            ],
            id="restartPolicy-Always",
        ),
        pytest.param(
            _set_spec("idleTimeoutSeconds", -1),
            ["spec.idleTimeoutSeconds", "should be greater than or equal to 0"],
            id="idleTimeoutSeconds-negative",
        ),
        pytest.param(
            _set_container(0, "resources", {"limits": {"cpu": "two"}}),
            ["spec.template.spec.containers[0].resources.limits.cpu", "should match"],
            id="quantity-not-a-quantity",
        ),
        *_port_cases(),
    ],
)
def test_bad_kernel_is_rejected_with_a_clear_message(
    api_client: client.ApiClient,
    kernels: ResourceClient,
    edit: Callable[[Kernel], None],
    expected: list[str],
) -> None:
    kernel = new_kernel()
    edit(kernel)

    message = rejection(api_client, kernels, kernel)

    for text in expected:
        assert text in message


DNS_1035 = "metadata.name must be a DNS-1035 label"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        pytest.param("Kernel-one", DNS_1035, id="uppercase"),
        pytest.param("1kernel", DNS_1035, id="starts-with-digit"),
        pytest.param("kernel.one", DNS_1035, id="dot"),
        pytest.param("k" * 64, "metadata.name must be at most 63 characters", id="64-chars"),
    ],
)
def test_kernel_name_must_be_a_dns_1035_label(
    api_client: client.ApiClient, kernels: ResourceClient, name: str, expected: str
) -> None:
    message = rejection(api_client, kernels, new_kernel(name))

    assert f"metadata.name: Invalid value: {expected}" in message


# ----------------------------------------------------------------------- good input
def test_port_env_from_value_from_or_in_range_is_accepted(kernels: ResourceClient) -> None:
    env = [
        {
            "name": "KERNEL_SHELL_PORT",
            "valueFrom": {"configMapKeyRef": {"name": "ports", "key": "shell"}},
        },
        {"name": "KERNEL_IOPUB_PORT", "value": "", "valueFrom": {"fieldRef": {"fieldPath": "x"}}},
        {"name": "KERNEL_STDIN_PORT", "value": "1"},
        {"name": "KERNEL_HB_PORT", "value": "65535"},
        {"name": "NOT_A_PORT", "value": "anything at all"},
    ]
    kernel = new_kernel()
    _set_container(0, "env", env)(kernel)

    kernels.create(kernel)

    stored = kernels.get("kernel")
    assert stored["spec"]["template"]["spec"]["containers"][0]["env"] == env


@pytest.mark.parametrize("policy", ["OnFailure", "Never"])
def test_restart_policy_never_or_on_failure_is_accepted(
    kernels: ResourceClient, policy: str
) -> None:
    kernel = new_kernel()
    _set_pod("restartPolicy", policy)(kernel)

    kernels.create(kernel)

    assert kernels.get("kernel")["spec"]["template"]["spec"]["restartPolicy"] == policy


def test_name_of_63_characters_is_accepted(kernels: ResourceClient) -> None:
    name = "k" + "-0" * 30 + "xy"
    assert len(name) == 63

    created = kernels.create(new_kernel(name))

    assert created["metadata"]["name"] == name


def test_idle_timeout_zero_is_accepted(kernels: ResourceClient) -> None:
    kernel = new_kernel()
    kernel["spec"]["idleTimeoutSeconds"] = 0

    kernels.create(kernel)

    assert kernels.get("kernel")["spec"]["idleTimeoutSeconds"] == 0


# ------------------------------------------------------------------ full PodSpec
def test_recent_pod_spec_fields_survive_a_round_trip(kernels: ResourceClient) -> None:
    spec: dict[str, Any] = {
        "idleTimeoutSeconds": 3600,
        "template": {
            "metadata": {
                "labels": {"team": "data-science"},
                "annotations": {"example.com/notebook": "analysis.ipynb"},
            },
            "spec": {
                "restartPolicy": "Never",
                "schedulingGates": [{"name": "example.com/quota"}],  # 1.26
                "hostUsers": False,  # 1.25
                "os": {"name": "linux"},  # 1.23
                "resourceClaims": [  # 1.26 (dynamic resource allocation)
                    {"name": "gpu", "resourceClaimTemplateName": "one-gpu"}
                ],
                "resources": {"limits": {"cpu": "4", "memory": "8Gi"}},  # 1.32 pod resources
                "hostnameOverride": "kernel-host",  # 1.34
                "initContainers": [
                    # 1.28: a sidecar is an init container that restarts "Always"
                    {"name": "proxy", "image": "envoy:1", "restartPolicy": "Always"}
                ],
                "containers": [
                    {
                        "name": "kernel",
                        "image": "elyra/kernel-py:3.2.3",
                        "resizePolicy": [  # 1.27
                            {"resourceName": "cpu", "restartPolicy": "NotRequired"}
                        ],
                        "resources": {
                            "requests": {"cpu": "500m", "memory": "1Gi"},
                            "limits": {"cpu": 2},
                            "claims": [{"name": "gpu"}],
                        },
                        "ports": [{"name": "shell", "containerPort": 52317, "protocol": "TCP"}],
                        "readinessProbe": {"tcpSocket": {"port": "shell"}},
                        "livenessProbe": {"tcpSocket": {"port": 52317}, "periodSeconds": 30},
                        "env": [{"name": "KERNEL_SHELL_PORT", "value": "52317"}],
                    }
                ],
                "volumes": [
                    {
                        "name": "scratch",
                        "ephemeral": {
                            "volumeClaimTemplate": {
                                "metadata": {"labels": {"kind": "scratch"}},
                                "spec": {
                                    "accessModes": ["ReadWriteOnce"],
                                    "resources": {"requests": {"storage": "1Gi"}},
                                },
                            }
                        },
                    }
                ],
            },
        },
    }
    kernel = new_kernel()
    kernel["metadata"]["labels"] = {"owner": "alice"}
    kernel["spec"] = copy.deepcopy(spec)

    kernels.create(kernel)
    stored = kernels.get("kernel")

    pod = stored["spec"]["template"]["spec"]
    assert pod["schedulingGates"] == [{"name": "example.com/quota"}]
    assert pod["hostUsers"] is False
    assert pod["os"] == {"name": "linux"}
    assert pod["resourceClaims"] == [{"name": "gpu", "resourceClaimTemplateName": "one-gpu"}]
    assert pod["initContainers"][0]["restartPolicy"] == "Always"
    assert pod["containers"][0]["resizePolicy"] == [
        {"resourceName": "cpu", "restartPolicy": "NotRequired"}
    ]
    assert pod["containers"][0]["resources"]["limits"] == {"cpu": 2}
    assert stored["spec"]["template"]["metadata"] == spec["template"]["metadata"]
    assert stored["metadata"]["labels"] == {"owner": "alice"}
    assert stored["spec"] == spec  # nothing pruned, nothing defaulted


def test_container_port_protocol_is_defaulted_as_in_a_pod(kernels: ResourceClient) -> None:
    # The one default kept from upstream: a list-map key must be required or defaulted.
    kernel = new_kernel()
    _set_container(0, "ports", [{"containerPort": 52317}])(kernel)

    kernels.create(kernel)

    ports = kernels.get("kernel")["spec"]["template"]["spec"]["containers"][0]["ports"]
    assert ports == [{"containerPort": 52317, "protocol": "TCP"}]


# --------------------------------------------------------------------- versions
@pytest.mark.parametrize("version", ["v1beta1", "v1alpha1"])
def test_deprecated_version_is_served_with_a_warning_naming_v1(
    api_client: client.ApiClient, kernels: ResourceClient, namespace: str, version: str
) -> None:
    kernel = new_kernel(f"from-{version}", version=version)
    kernel["spec"]["idleTimeoutSeconds"] = 60
    old_path = kernels_resource(version).path(namespace=namespace)

    created = raw_request(api_client, "POST", old_path, kernel)

    assert created.status == 201, created.body
    assert created.body["apiVersion"] == f"{GROUP}/{version}"
    assert any(
        f"{GROUP}/{version} Kernel is deprecated" in w and f"use {GROUP}/v1 Kernel" in w
        for w in created.warnings
    ), created.warnings
    read_old = raw_request(api_client, "GET", f"{old_path}/from-{version}")
    assert any(f"{GROUP}/v1 " in w for w in read_old.warnings), read_old.warnings

    stored = kernels.get(f"from-{version}")
    assert stored["apiVersion"] == f"{GROUP}/v1"
    assert stored["spec"] == kernel["spec"]
    read_v1 = raw_request(api_client, "GET", kernels.resource.path(namespace=namespace))
    assert not any("deprecated" in w for w in read_v1.warnings), read_v1.warnings


def test_deprecated_version_applies_the_same_validation(
    api_client: client.ApiClient, namespace: str
) -> None:
    kernel = new_kernel("Bad", version="v1alpha1")
    answer = raw_request(
        api_client, "POST", kernels_resource("v1alpha1").path(namespace=namespace), kernel
    )
    assert answer.status == 422
    assert DNS_1035 in answer.body["message"]


# --------------------------------------------------------------- installed CRD
def test_installed_crd_has_names_columns_and_status_subresource(rest: RestClient) -> None:
    crd = ResourceClient(rest, CRDS).get(CRD_NAME)

    names = crd["status"]["acceptedNames"]
    assert names["kind"] == "Kernel"
    assert names["listKind"] == "KernelList"
    assert names["singular"] == "kernel"
    assert names["shortNames"] == ["kn"]
    assert names["categories"] == ["jupyter"]
    assert crd["spec"]["scope"] == "Namespaced"
    assert crd["spec"]["conversion"]["strategy"] == "None"
    versions = {v["name"]: v for v in crd["spec"]["versions"]}
    assert list(versions) == ["v1", "v1beta1", "v1alpha1"]
    assert [n for n, v in versions.items() if v["storage"]] == ["v1"]
    assert all(v["served"] for v in versions.values())
    assert not versions["v1"].get("deprecated", False)
    for name in ("v1beta1", "v1alpha1"):
        assert versions[name]["deprecated"] is True
        assert "jupyter.org/v1 " in versions[name]["deprecationWarning"]
    schemas = [v["schema"] for v in versions.values()]
    assert all(s == schemas[0] for s in schemas)
    ready = '.status.conditions[?(@.type=="Ready")]'
    for version in versions.values():
        assert version["subresources"] == {"status": {}}
        columns = [
            (c["name"], c["type"], c["jsonPath"]) for c in version["additionalPrinterColumns"]
        ]
        assert columns == [
            ("Ready", "string", f"{ready}.status"),
            ("Reason", "string", f"{ready}.reason"),
            ("Phase", "string", ".status.phase"),
            ("IP", "string", ".status.podIP"),
            ("Age", "date", ".metadata.creationTimestamp"),
            ("Started", "date", ".status.containerState.running.startedAt"),
        ]


def test_discovery_lists_kernels_with_short_name_and_category(rest: RestClient) -> None:
    info = RequestInfo(verb="get", resource="discovery")
    resources = rest.request("GET", f"/apis/{GROUP}/v1", info=info)["resources"]

    kernels = next(r for r in resources if r["name"] == "kernels")
    assert kernels["shortNames"] == ["kn"]
    assert kernels["categories"] == ["jupyter"]
    assert kernels["namespaced"] is True
    assert any(r["name"] == "kernels/status" for r in resources)


def test_status_is_written_only_through_its_subresource(kernels: ResourceClient) -> None:
    created = kernels.create(new_kernel())
    status = {
        "phase": "Running",
        "podIP": "10.0.0.7",
        "readyReplicas": 1,
        "kernelID": "0b7f3d4e-5a2b-4c1d-9e8f-1a2b3c4d5e6f",
        "observedGeneration": 1,
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "PodReady",
                "message": "the kernel listens",
                "lastTransitionTime": "2026-01-02T03:04:05Z",
            }
        ],
        "connection": {
            "host": "kernel.ns.svc.cluster.local",
            "shellPort": 52317,
            "iopubPort": 52318,
            "stdinPort": 52319,
            "hbPort": 52320,
            "controlPort": 52321,
            "transport": "tcp",
            "signatureScheme": "hmac-sha256",
            "keySecret": "kernel-connection",
        },
        "containerState": {"running": {"startedAt": "2026-01-02T03:04:00Z"}},
    }

    ignored = kernels.update({**created, "status": status})
    assert "status" not in ignored
    updated = kernels.update({**ignored, "status": status}, subresource="status")

    assert updated["status"] == status
    assert updated["spec"] == created["spec"]


def test_status_rejects_ready_replicas_above_one(kernels: ResourceClient) -> None:
    created = kernels.create(new_kernel())
    with pytest.raises(Invalid) as info:
        kernels.update({**created, "status": {"readyReplicas": 2}}, subresource="status")
    assert "status.readyReplicas" in info.value.message


def test_garbage_collector_knows_kernels(
    api_client: client.ApiClient, kernels: ResourceClient, namespace: str
) -> None:
    # The session installs the CRD before kube-controller-manager starts, so its garbage
    # collector follows ownerReferences to Kernels from the start.
    kernel = kernels.create(new_kernel())
    core = client.CoreV1Api(api_client)
    core.create_namespaced_config_map(
        namespace,
        {
            "metadata": {
                "name": "owned",
                "ownerReferences": [
                    {
                        "apiVersion": f"{GROUP}/v1",
                        "kind": "Kernel",
                        "name": "kernel",
                        "uid": kernel["metadata"]["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            }
        },
    )

    kernels.delete("kernel")

    def collected() -> bool:
        items = core.list_namespaced_config_map(namespace, field_selector="metadata.name=owned")
        return not items.items

    eventually(
        collected, timeout=30, interval=0.2, message="ConfigMap owned by a Kernel not collected"
    )
