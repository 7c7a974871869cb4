"""The KernelPool CRD (config/crd/bases/jupyter.org_kernelpools.yaml) against the real API
server: it is what hack/crd/generate.py builds from this server, its template is validated as
a Kernel's, it is installed with its names, columns, status and scale subresources, and
``kubectl scale`` drives ``spec.replicas``."""

from __future__ import annotations

from typing import Any

import pytest

from crd.generate import POOL_OUTPUT, build_crd, build_pool_crd, fetch_openapi, render
from deploytest import kubectl
from informers import Invalid, Resource, ResourceClient, RestClient

GROUP = "jupyter.org"
CRDS = Resource("apiextensions.k8s.io", "v1", "customresourcedefinitions", namespaced=False)
POOLS = Resource(GROUP, "v1alpha1", "kernelpools")


def new_pool(name: str = "pool", **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": f"{GROUP}/v1alpha1",
        "kind": "KernelPool",
        "metadata": {"name": name},
        "spec": {
            "replicas": 2,
            "template": {
                "spec": {"containers": [{"name": "main", "image": "elyra/kernel-py:3.2.3"}]}
            },
        },
    }
    body["spec"].update(spec)
    return body


@pytest.fixture
def rest(api_client: Any) -> RestClient:
    return RestClient(api_client, user_agent="tests/crd")


@pytest.fixture
def pools(rest: RestClient, namespace: str) -> ResourceClient:
    return ResourceClient(rest, POOLS, namespace=namespace)


def test_committed_pool_crd_is_generated_from_this_api_server(kubeconfig: str) -> None:
    assert POOL_OUTPUT.read_text(encoding="utf-8") == render(
        build_pool_crd(fetch_openapi(kubeconfig))
    ), f"{POOL_OUTPUT} is not what hack/crd/generate.py builds: run `make crd`"


def test_the_pool_template_has_the_kernel_template_schema(kubeconfig: str) -> None:
    openapi = fetch_openapi(kubeconfig)
    kernel = build_crd(openapi)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    pool = build_pool_crd(openapi)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    kernel_template = kernel["properties"]["spec"]["properties"]["template"]
    assert pool["properties"]["spec"]["properties"]["template"] == kernel_template


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param({"template": None}, "spec.template: Required value", id="no-template"),
        pytest.param({"replicas": -1}, "spec.replicas: Invalid value: -1", id="replicas-negative"),
        pytest.param(
            {"template": {"spec": {"containers": [{"name": "main"}]}}},
            "spec.template.spec.containers[0].image is required and must not be empty",
            id="image-missing",
        ),
        pytest.param(
            {
                "template": {
                    "spec": {
                        "restartPolicy": "Always",
                        "containers": [{"name": "main", "image": "i"}],
                    }
                }
            },
            "spec.template.spec.restartPolicy must be Never or OnFailure",
            id="restartPolicy-Always",
        ),
    ],
)
def test_bad_pool_is_rejected_with_a_clear_message(
    pools: ResourceClient, spec: dict[str, Any], expected: str
) -> None:
    body = new_pool()
    for key, value in spec.items():
        if value is None:
            del body["spec"][key]
        else:
            body["spec"][key] = value
    with pytest.raises(Invalid) as err:
        pools.create(body)
    assert expected in str(err.value)


def test_replicas_default_to_one(pools: ResourceClient) -> None:
    body = new_pool()
    del body["spec"]["replicas"]
    assert pools.create(body)["spec"]["replicas"] == 1


def test_installed_pool_crd_has_names_columns_and_subresources(rest: RestClient) -> None:
    crd = ResourceClient(rest, CRDS).get("kernelpools.jupyter.org")
    names = crd["status"]["acceptedNames"]
    assert (names["kind"], names["listKind"], names["singular"]) == (
        "KernelPool",
        "KernelPoolList",
        "kernelpool",
    )
    assert names["shortNames"] == ["kpool"]
    assert names["categories"] == ["jupyter"]
    (version,) = crd["spec"]["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {
        "status": {},
        "scale": {
            "specReplicasPath": ".spec.replicas",
            "statusReplicasPath": ".status.replicas",
            "labelSelectorPath": ".status.selector",
        },
    }
    assert [c["name"] for c in version["additionalPrinterColumns"]] == [
        "Desired",
        "Idle",
        "Ready",
        "Claimed",
        "Age",
    ]


def test_kubectl_scale_sets_replicas_and_reads_the_status(
    pools: ResourceClient, kubeconfig: str, namespace: str
) -> None:
    pools.create(new_pool("scaled"))
    pools.patch(
        "scaled",
        {"status": {"replicas": 2, "selector": "jupyter.org/kernel-pool=scaled"}},
        subresource="status",
    )
    kubectl("scale", "kernelpool/scaled", "--replicas=5", "-n", namespace, kubeconfig=kubeconfig)
    assert pools.get("scaled")["spec"]["replicas"] == 5
    out = kubectl(
        "get", "kpool", "scaled", "-n", namespace, "-o",
        "jsonpath={.spec.replicas}/{.status.replicas}", kubeconfig=kubeconfig,
    )  # fmt: skip
    assert out.strip() == "5/2"
