"""``config/``: every kustomization, overlay and component renders with ``kubectl kustomize``,
the session's API server accepts the result (server-side apply, dry run), and the rendered
objects say what README "Deployment" promises."""

from __future__ import annotations

import copy
import filecmp
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from deploytest import (
    CLUSTER_SCOPED,
    CONFIG,
    REPO,
    Doc,
    apply,
    find,
    kubectl,
    render,
    write_kustomization,
)

SYSTEM_NAMESPACE = "jupyter-system"
OVERLAY_NAMESPACE = "kernels"  # the namespace config/overlays/namespaced sets
LAUNCH_FILES = ("bootstrap-kernel.sh", "launch_ipykernel.py")

# What each target is made of: resources and components under config/, and the namespace
# that the kustomization adding components sets (as a user's would, README "Deployment").
TARGETS: dict[str, tuple[tuple[str, ...], tuple[str, ...], str]] = {
    "default": (("default",), (), ""),
    "overlays/namespaced": (("overlays/namespaced",), (), ""),
    "default+prometheus+network-policy": (
        ("default",),
        ("prometheus", "network-policy"),
        SYSTEM_NAMESPACE,
    ),
    "namespaced+prometheus+network-policy": (
        ("overlays/namespaced",),
        ("prometheus", "network-policy"),
        OVERLAY_NAMESPACE,
    ),
    "default+flowcontrol": (("default",), ("flowcontrol",), SYSTEM_NAMESPACE),
    "crd": (("crd",), (), ""),
    "rbac": (("rbac",), (), ""),
    "manager": (("manager",), (), ""),
    "kernel-launch": (("kernel-launch",), (), ""),
    "dashboards": (("dashboards",), (), ""),
    "samples": (("samples",), (), ""),
}

# A stand-in for prometheus-operator's CRD, so that the server can dry-run a ServiceMonitor.
SERVICE_MONITOR_CRD: Doc = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "servicemonitors.monitoring.coreos.com"},
    "spec": {
        "group": "monitoring.coreos.com",
        "scope": "Namespaced",
        "names": {
            "kind": "ServiceMonitor",
            "plural": "servicemonitors",
            "singular": "servicemonitor",
        },
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "x-kubernetes-preserve-unknown-fields": True,
                    }
                },
            }
        ],
    },
}


def build(name: str, tmp_path: Path) -> list[Doc]:
    """The objects of ``name`` (rendered once per session; each caller gets a copy)."""
    if name not in _rendered:
        _rendered[name] = _render(name, tmp_path)
    return copy.deepcopy(_rendered[name])


_rendered: dict[str, list[Doc]] = {}


def _render(name: str, tmp_path: Path) -> list[Doc]:
    resources, components, namespace = TARGETS[name]
    if not components:
        return render(CONFIG / resources[0])  # the directory itself, as a user renders it
    where = write_kustomization(
        tmp_path / name.replace("/", "-"),
        resources=[CONFIG / r for r in resources],
        components=[CONFIG / c for c in components],
        namespace=namespace,
    )
    return render(where)


@pytest.fixture(scope="module")
def target_namespaces(api_client: client.ApiClient, kubeconfig: str) -> Iterator[None]:
    """The namespaces the manifests install into, and the ServiceMonitor CRD stand-in."""
    core = client.CoreV1Api(api_client)
    for name in (SYSTEM_NAMESPACE, OVERLAY_NAMESPACE):
        core.create_namespace({"metadata": {"name": name}})
    apply([SERVICE_MONITOR_CRD], kubeconfig=kubeconfig)
    kubectl(
        "wait",
        "--for=condition=Established",
        "--timeout=30s",
        f"crd/{SERVICE_MONITOR_CRD['metadata']['name']}",
        kubeconfig=kubeconfig,
    )
    try:
        yield
    finally:
        for name in (SYSTEM_NAMESPACE, OVERLAY_NAMESPACE):
            core.delete_namespace(name)
        kubectl(
            "delete",
            "crd",
            SERVICE_MONITOR_CRD["metadata"]["name"],
            "--wait=false",
            kubeconfig=kubeconfig,
        )


@pytest.mark.usefixtures("target_namespaces")
@pytest.mark.parametrize("target", sorted(TARGETS))
def test_renders_and_the_server_accepts_it(
    target: str, tmp_path: Path, kubeconfig: str, namespace: str
) -> None:
    docs = build(target, tmp_path)
    assert docs
    for doc in docs:
        if doc["kind"] not in CLUSTER_SCOPED:
            doc["metadata"].setdefault("namespace", namespace)  # e.g. samples, dashboards
    out = apply(docs, kubeconfig=kubeconfig, dry_run=True)
    assert out.count("serverside-applied (server dry run)") == len(docs), out


def test_default_installs_everything_into_jupyter_system(tmp_path: Path) -> None:
    docs = build("default", tmp_path)
    kinds = sorted((d["kind"], d["metadata"]["name"]) for d in docs)
    assert kinds == [
        ("ClusterRole", "kernel-controller"),
        ("ClusterRole", "kernel-editor"),
        ("ClusterRole", "kernel-viewer"),
        ("ClusterRoleBinding", "kernel-controller"),
        ("ConfigMap", "kernel-launch-scripts"),
        ("CustomResourceDefinition", "kernelpools.jupyter.org"),
        ("CustomResourceDefinition", "kernels.jupyter.org"),
        ("Deployment", "kernel-controller"),
        ("Namespace", SYSTEM_NAMESPACE),
        ("Role", "kernel-controller-activation-key"),
        ("Role", "kernel-controller-leader-election"),
        ("RoleBinding", "kernel-controller-activation-key"),
        ("RoleBinding", "kernel-controller-leader-election"),
        ("Service", "kernel-controller-metrics"),
        ("ServiceAccount", "kernel-controller"),
    ]
    for doc in docs:
        if doc["kind"] not in CLUSTER_SCOPED:
            assert doc["metadata"]["namespace"] == SYSTEM_NAMESPACE, doc["kind"]
        for subject in doc.get("subjects", ()):
            assert subject == {
                "kind": "ServiceAccount",
                "name": "kernel-controller",
                "namespace": SYSTEM_NAMESPACE,
            }
    assert (
        find(docs, "ClusterRole", "kernel-editor")["metadata"]["labels"][
            "rbac.authorization.k8s.io/aggregate-to-edit"
        ]
        == "true"
    )
    assert (
        find(docs, "ClusterRole", "kernel-viewer")["metadata"]["labels"][
            "rbac.authorization.k8s.io/aggregate-to-view"
        ]
        == "true"
    )
    assert (
        find(docs, "Namespace")["metadata"]["labels"]["pod-security.kubernetes.io/enforce"]
        == "restricted"
    )


def test_the_deployment_is_hardened_and_leader_elected(tmp_path: Path) -> None:
    docs = build("default", tmp_path)
    deployment = find(docs, "Deployment", "kernel-controller")
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert spec["replicas"] == 2
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    assert pod["serviceAccountName"] == find(docs, "ServiceAccount")["metadata"]["name"]
    assert pod["terminationGracePeriodSeconds"] == 30
    assert pod["enableServiceLinks"] is False
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "runAsGroup": 65532,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert container["image"] == "kernel-controller:latest"
    assert container["args"] == [
        "--enable-leader-election",
        "--leader-election-namespace=$(POD_NAMESPACE)",
        "--metrics-addr=:8080",
        "--probe-addr=:8081",
    ]
    assert container["env"] == [
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}
    ]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"metrics": 8080, "probes": 8081}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "probes"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "probes"}
    assert container["resources"] == {
        "requests": {"cpu": "100m", "memory": "128Mi"},
        "limits": {"cpu": "1", "memory": "512Mi"},
    }
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["runAsNonRoot"] is True and security["runAsUser"] == 65532
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}

    service = find(docs, "Service", "kernel-controller-metrics")
    assert service["spec"]["selector"].items() <= spec["template"]["metadata"]["labels"].items()
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 8080, "targetPort": "metrics", "protocol": "TCP"}
    ]


def test_the_image_is_overridable_with_kustomize_images(tmp_path: Path) -> None:
    where = write_kustomization(tmp_path / "image", resources=[CONFIG / "default"])
    body = yaml.safe_load((where / "kustomization.yaml").read_text())
    body["images"] = [
        {"name": "kernel-controller", "newName": "registry.test/jupyter/kc", "newTag": "v1.2.3"}
    ]
    (where / "kustomization.yaml").write_text(yaml.safe_dump(body))
    container = find(render(where), "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.test/jupyter/kc:v1.2.3"


def test_the_namespaced_overlay_has_nothing_cluster_scoped(tmp_path: Path) -> None:
    """Made per namespace by a kustomization that sets ``namespace:`` (README)."""
    where = write_kustomization(
        tmp_path / "team-a", resources=[CONFIG / "overlays" / "namespaced"], namespace="team-a"
    )
    docs = render(where)
    assert sorted((d["kind"], d["metadata"]["name"]) for d in docs) == [
        ("ConfigMap", "kernel-launch-scripts"),
        ("Deployment", "kernel-controller"),
        ("Role", "kernel-controller"),
        ("Role", "kernel-controller-activation-key"),
        ("Role", "kernel-controller-leader-election"),
        ("RoleBinding", "kernel-controller"),
        ("RoleBinding", "kernel-controller-activation-key"),
        ("RoleBinding", "kernel-controller-leader-election"),
        ("Service", "kernel-controller-metrics"),
        ("ServiceAccount", "kernel-controller"),
    ]
    for doc in docs:
        assert doc["metadata"]["namespace"] == "team-a", doc["kind"]
        for subject in doc.get("subjects", ()):
            assert subject["namespace"] == "team-a"
        if doc["kind"] == "RoleBinding":
            assert doc["roleRef"]["kind"] == "Role"
    args = find(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--namespaces=$(POD_NAMESPACE)" in args
    assert "--leader-election-namespace=$(POD_NAMESPACE)" in args


@pytest.mark.parametrize(
    ("target", "where"),
    [
        ("default+prometheus+network-policy", SYSTEM_NAMESPACE),
        ("namespaced+prometheus+network-policy", OVERLAY_NAMESPACE),
    ],
)
def test_components_select_the_controller(target: str, where: str, tmp_path: Path) -> None:
    docs = build(target, tmp_path)
    service = find(docs, "Service", "kernel-controller-metrics")
    pod_labels = find(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]

    monitor = find(docs, "ServiceMonitor")
    assert monitor["metadata"]["namespace"] == where == service["metadata"]["namespace"]
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "metrics" and endpoint["path"] == "/metrics"
    assert endpoint["honorLabels"] is True  # keep the Kernel's `namespace` label

    policy = find(docs, "NetworkPolicy")
    assert policy["metadata"]["namespace"] == where
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    metrics_rule, probe_rule = policy["spec"]["ingress"]
    assert metrics_rule["ports"] == [{"port": 8080, "protocol": "TCP"}]
    assert metrics_rule["from"] == [{"namespaceSelector": {"matchLabels": {"metrics": "enabled"}}}]
    assert probe_rule == {"ports": [{"port": 8081, "protocol": "TCP"}]}


def test_the_flow_schema_puts_the_controllers_service_account_in_its_own_level(
    tmp_path: Path,
) -> None:
    docs = build("default+flowcontrol", tmp_path)
    account = find(docs, "ServiceAccount")
    deployment = find(docs, "Deployment")
    schema = find(docs, "FlowSchema")
    level = find(docs, "PriorityLevelConfiguration")

    assert (
        deployment["spec"]["template"]["spec"]["serviceAccountName"]
        == (account["metadata"]["name"])
    )
    (rule,) = schema["spec"]["rules"]
    assert rule["subjects"] == [
        {
            "kind": "ServiceAccount",
            "serviceAccount": {
                "name": account["metadata"]["name"],
                "namespace": account["metadata"]["namespace"],
            },
        }
    ]
    assert schema["spec"]["priorityLevelConfiguration"]["name"] == level["metadata"]["name"]
    assert schema["spec"]["matchingPrecedence"] < 9000  # before the built-in service-accounts
    assert level["spec"]["type"] == "Limited"
    assert level["spec"]["limited"]["nominalConcurrencyShares"] > 0


def test_the_dashboard_config_map(tmp_path: Path) -> None:
    (config_map,) = build("dashboards", tmp_path)
    assert config_map["kind"] == "ConfigMap"
    assert config_map["metadata"]["name"] == "kernel-controller-dashboard"
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    text = (CONFIG / "dashboards" / "kernel-controller.json").read_text()
    assert config_map["data"] == {"kernel-controller.json": text}
    assert json.loads(text)["uid"] == "kernel-controller"


def test_the_samples_mount_the_launch_scripts_and_the_pooled_one_names_the_pool(
    tmp_path: Path,
) -> None:
    docs = build("samples", tmp_path)
    assert sorted((d["kind"], d["metadata"]["name"]) for d in docs) == [
        ("Kernel", "kernel-pooled-sample"),
        ("Kernel", "kernel-sample"),
        ("KernelPool", "python-pool"),
    ]
    (config_map,) = build("kernel-launch", tmp_path)
    assert config_map["metadata"]["name"] == "kernel-launch-scripts"
    assert sorted(config_map["data"]) == sorted(LAUNCH_FILES)
    for doc in (find(docs, "Kernel", "kernel-sample"), find(docs, "KernelPool", "python-pool")):
        pod = doc["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["image"] == "elyra/kernel-py:3.2.3"
        (volume,) = pod["volumes"]
        assert volume["configMap"]["name"] == config_map["metadata"]["name"]
        assert {m["subPath"]: m["mountPath"] for m in container["volumeMounts"]} == {
            "bootstrap-kernel.sh": "/usr/local/bin/bootstrap-kernel.sh",
            "launch_ipykernel.py": (
                "/usr/local/bin/kernel-launchers/python/scripts/launch_ipykernel.py"
            ),
        }
    pooled = find(docs, "Kernel", "kernel-pooled-sample")
    assert "template" not in pooled["spec"]
    assert pooled["spec"]["poolRef"] == {"name": "python-pool"}


def test_the_sample_installs_with_kubectl_apply_k(
    kubeconfig: str, namespace: str, api_client: client.ApiClient
) -> None:
    """``kubectl apply -k config/kernel-launch`` and ``-k config/samples`` into a namespace:
    the server stores both (the controller itself is covered by the other deploy tests)."""
    kubectl("apply", "--server-side", "-k", str(CONFIG / "kernel-launch"), "-n", namespace,
            kubeconfig=kubeconfig)  # fmt: skip
    kubectl("apply", "--server-side", "-k", str(CONFIG / "samples"), "-n", namespace,
            kubeconfig=kubeconfig)  # fmt: skip
    data = (
        client.CoreV1Api(api_client)
        .read_namespaced_config_map("kernel-launch-scripts", namespace)
        .data
    )
    for name in LAUNCH_FILES:
        assert data[name] == (CONFIG / "kernel-launch" / name).read_text()
    out = kubectl("get", "kernels.jupyter.org,kernelpools.jupyter.org", "-n", namespace,
                  "-o", "name", kubeconfig=kubeconfig)  # fmt: skip
    assert sorted(out.split()) == [
        "kernel.jupyter.org/kernel-pooled-sample",
        "kernel.jupyter.org/kernel-sample",
        "kernelpool.jupyter.org/python-pool",
    ]


def test_kernel_launch_copies_match_their_source() -> None:
    """``config/kernel-launch/`` holds copies of ``kernel_launch/`` (``make
    kernel-launch-config``); skipped only while the sources do not exist yet."""
    sources = [REPO / "kernel_launch" / f for f in LAUNCH_FILES]
    missing = [str(p.relative_to(REPO)) for p in sources if not p.is_file()]
    if missing:
        pytest.skip(f"not written yet: {', '.join(missing)}")
    stale = [
        f
        for f in LAUNCH_FILES
        if not filecmp.cmp(REPO / "kernel_launch" / f, CONFIG / "kernel-launch" / f, shallow=False)
    ]
    assert not stale, (
        f"config/kernel-launch/{', '.join(stale)} differ from kernel_launch/: "
        "run `make kernel-launch-config`"
    )
