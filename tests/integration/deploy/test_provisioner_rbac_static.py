"""Least privilege for the Jupyter provisioner, statically: every (API group, resource, verb)
it can call is derived from ``src/kernel_provisioner``, and ``config/provisioner-rbac`` grants
exactly that set (``tests/e2e/test_provisioner_rbac.py`` proves each rule on the real server).

How calls are found (``ast``, nothing runs): in ``provisioner.py``, every use of a client of
``self._cluster().<kind>(namespace)`` — directly or through a local name — as ``.<verb>``; in
``cluster.py``, the resources the shared watch's informers list and watch. A client used any
other way fails the test, so a new kind of call cannot slip past it."""

from __future__ import annotations

import ast

from deploytest import CONFIG, REPO, Rule, render, rules_of

SRC = REPO / "src" / "kernel_provisioner"
KINDS = {"kernels": ("jupyter.org", "kernels"), "pods": ("", "pods"), "secrets": ("", "secrets")}
INFORMED = {"KERNELS": ("jupyter.org", "kernels"), "PODS": ("", "pods")}
VERBS = {"get", "list", "watch", "create", "update", "patch", "delete"}

EXPECTED: set[Rule] = {
    ("jupyter.org", "kernels", "create"),
    ("jupyter.org", "kernels", "delete"),
    ("jupyter.org", "kernels", "list"),
    ("jupyter.org", "kernels", "watch"),
    ("", "pods", "delete"),
    ("", "pods", "list"),
    ("", "pods", "watch"),
    ("", "secrets", "get"),
}


def cluster_kind(node: ast.AST) -> str | None:
    """``kind`` when ``node`` is ``self._cluster().<kind>(...)``."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
        return None
    inner = node.func.value
    is_cluster = (
        isinstance(inner, ast.Call)
        and isinstance(inner.func, ast.Attribute)
        and inner.func.attr == "_cluster"
    )
    return node.func.attr if is_cluster and node.func.attr in KINDS else None


def derived_rules() -> set[Rule]:
    rules: set[Rule] = set()
    tree = ast.parse((SRC / "provisioner.py").read_text())
    local: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and (kind := cluster_kind(node.value)):
            (target,) = node.targets
            assert isinstance(target, ast.Name), ast.unparse(node)
            local[target.id] = kind
    parents = {id(child): node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    for node in ast.walk(tree):
        if cluster_kind(node):  # a client is kept in a name, or used at once for a verb
            parent = parents[id(node)]
            used = isinstance(parent, ast.Assign) or (
                isinstance(parent, ast.Attribute) and parent.attr in VERBS
            )
            assert used, ast.unparse(parent)
        if not isinstance(node, ast.Attribute) or node.attr not in VERBS:
            continue
        kind = cluster_kind(node.value)
        if kind is None and isinstance(node.value, ast.Name):
            kind = local.get(node.value.id)
        if kind is not None:
            rules.add((*KINDS[kind], node.attr))
    for node in ast.walk(tree):  # a name holding a client is used for its verbs only
        if isinstance(node, ast.Name) and node.id in local:
            parent = parents[id(node)]
            assert isinstance(parent, ast.Assign) or (
                isinstance(parent, ast.Attribute) and parent.attr in VERBS
            ), ast.unparse(parent)

    cluster = ast.parse((SRC / "cluster.py").read_text())
    for node in ast.walk(cluster):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "informer"
        ):
            arg = node.args[0]  # the resource; then its indexers, if any
            assert isinstance(arg, ast.Name) and arg.id in INFORMED, ast.unparse(node)
            rules |= {(*INFORMED[arg.id], "list"), (*INFORMED[arg.id], "watch")}
    return rules


def test_the_derivation_finds_what_the_provisioner_calls() -> None:
    assert derived_rules() == EXPECTED


def test_config_provisioner_rbac_grants_exactly_what_the_provisioner_calls() -> None:
    docs = render(CONFIG / "provisioner-rbac")
    roles = [d for d in docs if d["kind"] in ("Role", "ClusterRole")]
    assert [(r["kind"], r["metadata"]["name"]) for r in roles] == [("Role", "kernel-provisioner")]
    assert rules_of(roles) == derived_rules()
    binding = next(d for d in docs if d["kind"] == "RoleBinding")
    account = next(d for d in docs if d["kind"] == "ServiceAccount")
    assert binding["roleRef"]["name"] == "kernel-provisioner"
    assert binding["subjects"][0]["name"] == account["metadata"]["name"]
