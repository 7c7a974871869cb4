"""Least privilege, statically: every (API group, resource, verb) the controller can call is
derived from its source, and the RBAC it is installed with grants exactly that set.

How calls are found (``ast``, no execution of the controller):
- ``src/reconcilers/controller.py`` creates every ``ResourceClient``: the ones handed to a
  ``SharedInformer`` as its ``lister_watcher`` are listed and watched; the ones given to
  ``Clients(...)`` and ``EventRecorder(...)`` are written through the methods that
  ``apply.py`` (``self._c.<kind>.<method>(...)``, ``subresource=`` included) and ``events.py``
  (``self._events.<method>(...)``) call on them;
- ``src/leader/lease.py`` sends ``self._call("<HTTP method>", name=...)`` to ``API_PATH``.
Anything outside those patterns (another ``ResourceClient``, a client passed on elsewhere)
fails the test, so a new kind of call cannot slip past it.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

from deploytest import CONFIG, REPO, Doc, Rule, render, rules_of, write_kustomization

SRC = REPO / "src"
CLIENT_METHODS = {"list", "watch", "get", "create", "update", "patch", "delete"}
# (HTTP method, names an object) -> RBAC verb
HTTP_VERBS = {
    ("GET", True): "get",
    ("GET", False): "list",
    ("POST", False): "create",
    ("PUT", True): "update",
    ("PATCH", True): "patch",
    ("DELETE", True): "delete",
}


def parse(relative: str) -> ast.Module:
    return ast.parse((SRC / relative).read_text(), filename=relative)


def calls(tree: ast.AST) -> list[ast.Call]:
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call)]


def name_of(func: ast.expr) -> str:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


def resource_clients(tree: ast.AST) -> list[ast.Call]:
    return [c for c in calls(tree) if name_of(c.func) == "ResourceClient"]


def resource_of(client_call: ast.Call) -> tuple[str, str]:
    """(group, plural) of ``ResourceClient(rest, CONSTANT, ...)``, from the live constant."""
    constant = client_call.args[1]
    assert isinstance(constant, ast.Name), ast.unparse(client_call)
    resource = getattr(importlib.import_module("reconcilers.controller"), constant.id)
    return resource.group, resource.plural


def is_self_attribute(node: ast.AST, owner: str) -> bool:
    return (
        isinstance(node, ast.Attribute)
        and node.attr == owner
        and isinstance(node.value, ast.Name)
        and node.value.id == "self"
    )


def attribute_calls(tree: ast.AST, *, owner: str) -> list[tuple[str, str, ast.Call]]:
    """``(attribute, method, call)`` for every ``self.<owner>.<attribute>.<method>(...)``, or
    ``("", method, call)`` for ``self.<owner>.<method>(...)``; fails on any other use of
    ``self.<owner>`` (passed on, stored elsewhere: calls this test could not see)."""
    parents = {id(child): node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    found: list[tuple[str, str, ast.Call]] = []
    for node in ast.walk(tree):
        if not is_self_attribute(node, owner):
            continue
        assert isinstance(node, ast.Attribute)
        if isinstance(node.ctx, ast.Store):
            continue  # the assignment in __init__
        first = parents.get(id(node))
        second = parents.get(id(first)) if first is not None else None
        third = parents.get(id(second)) if second is not None else None
        if (
            isinstance(first, ast.Attribute)
            and isinstance(second, ast.Call)
            and second.func is first
        ):
            found.append(("", first.attr, second))
        elif (
            isinstance(first, ast.Attribute)
            and isinstance(second, ast.Attribute)
            and isinstance(third, ast.Call)
            and third.func is second
        ):
            found.append((first.attr, second.attr, third))
        else:
            raise AssertionError(f"self.{owner} used other than by a method call: {first}")
    return found


def keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


ClientFields = dict[str, tuple[str, str]]  # constructor keyword -> (group, plural)
# Constructors in controller.py handed ResourceClients, and the module whose calls on them
# (``self.<attribute>...``) are followed.
CONSUMERS = ("Clients", "PoolClaims", "PoolClients")


def client_variables(tree: ast.AST) -> dict[str, ast.Call]:
    """Local names bound to ``ResourceClient(...)`` (``a = RC(..)``, ``a, b = RC(..), RC(..)``)."""
    found: dict[str, ast.Call] = {}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Assign) or len(node.targets) != 1:
            continue
        target, value = node.targets[0], node.value
        pairs = (
            zip(target.elts, value.elts, strict=True)
            if isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple)
            else [(target, value)]
        )
        for name, call in pairs:
            if (
                isinstance(name, ast.Name)
                and isinstance(call, ast.Call)
                and name_of(call.func) == "ResourceClient"
            ):
                found[name.id] = call
    return found


def controller_clients() -> tuple[dict[str, ClientFields], tuple[str, str], set[Rule]]:
    """From ``controller.py``: the clients each consumer (``Clients``, ``PoolClaims``,
    ``PoolClients``) gets, by keyword; the event recorder's resource; and list/watch on
    every resource an informer is made for."""
    for path in sorted(SRC.rglob("*.py")):  # no ResourceClient is made anywhere else
        relative = str(path.relative_to(SRC))
        if relative.startswith(("informers/", "kernel_provisioner/")):
            continue  # generic, or a client with its own RBAC (test_provisioner_rbac_static)
        if relative in ("reconcilers/controller.py", ACTIVATION_KEY_MODULE):
            continue
        assert not resource_clients(parse(relative)), f"{relative} creates a ResourceClient"
    controller = parse("reconcilers/controller.py")
    module = importlib.import_module("reconcilers.controller")
    variables = client_variables(controller)
    accounted: set[int] = {id(c) for c in variables.values()}
    consumers: dict[str, ClientFields] = {}
    recorder: tuple[str, str] | None = None
    informer_factories = 0
    for call in calls(controller):
        if name_of(call.func) == "SharedInformer":
            lister = keyword(call, "lister_watcher")
            assert isinstance(lister, ast.Call) and name_of(lister.func) == "ResourceClient"
            accounted.add(id(lister))
            informer_factories += 1
        elif name_of(call.func) in CONSUMERS:
            fields = consumers.setdefault(name_of(call.func), {})
            for kw in call.keywords:
                value = kw.value
                if isinstance(value, ast.Name) and value.id in variables:
                    value = variables[value.id]
                if not (isinstance(value, ast.Call) and name_of(value.func) == "ResourceClient"):
                    continue  # not a client (an activator, a key, ...)
                assert kw.arg is not None
                fields[kw.arg] = resource_of(value)
                accounted.add(id(value))
        elif name_of(call.func) == "EventRecorder":
            (events_client,) = call.args
            assert isinstance(events_client, ast.Call)
            recorder = resource_of(events_client)
            accounted.add(id(events_client))
    assert informer_factories == 1, "one informer factory, called per resource"
    assert set(consumers) == set(CONSUMERS) and recorder is not None
    unknown = [ast.unparse(c) for c in resource_clients(controller) if id(c) not in accounted]
    assert not unknown, f"ResourceClients the derivation does not follow: {unknown}"

    # The factory is called once per watched resource; a SharedInformer's reflector lists
    # and watches.
    watched: set[Rule] = set()
    for call in calls(controller):
        if name_of(call.func) == "informer" and call.args:
            constant = call.args[0]
            assert isinstance(constant, ast.Name)
            resource = getattr(module, constant.id)
            watched |= {(resource.group, resource.plural, v) for v in ("list", "watch")}
    return consumers, recorder, watched


ACTIVATION_KEY_MODULE = "kernel_controller/pools.py"


def activation_key_rules() -> set[Rule]:
    """What ``kernel_controller/pools.py`` sends on its one ``ResourceClient`` (the activation
    key's Secret in the controller's namespace): every ``client.<method>(...)``."""
    tree = parse(ACTIVATION_KEY_MODULE)
    (made,) = resource_clients(tree)
    constant = made.args[1]
    assert isinstance(constant, ast.Name)
    resource = getattr(importlib.import_module("kernel_controller.pools"), constant.id)
    rules: set[Rule] = set()
    for call in calls(tree):
        func = call.func
        if isinstance(func, ast.Attribute) and name_of(func.value) == "client":
            assert func.attr in CLIENT_METHODS, ast.unparse(call)
            rules.add((resource.group, resource.plural, func.attr))
    return rules


def lease_rules() -> set[Rule]:
    """What ``LeaseLock`` sends: ``self._call("<HTTP method>", name=...)`` to ``API_PATH``."""
    lease = parse("leader/lease.py")
    api_path = next(
        n.value.value
        for n in lease.body
        if isinstance(n, ast.Assign)
        and name_of(n.targets[0]) == "API_PATH"
        and isinstance(n.value, ast.Constant)
    )
    parts = api_path.strip("/").split("/")  # apis/<group>/<version>/namespaces/{ns}/<plural>
    assert parts[0] == "apis" and parts[3] == "namespaces", api_path
    call_api = [c for c in calls(lease) if name_of(c.func) == "call_api"]
    assert len(call_api) == 1, "one place sends requests: LeaseLock._call"
    rules: set[Rule] = set()
    for call in calls(lease):
        if is_self_attribute(call.func, "_call"):
            http = call.args[0]
            assert isinstance(http, ast.Constant), ast.unparse(call)
            named = keyword(call, "name")
            has_name = not (isinstance(named, ast.Constant) and named.value is None)
            rules.add((parts[1], parts[-1], HTTP_VERBS[(http.value, has_name)]))
    return rules


def followed(
    relative: str, owner: str, fields: ClientFields, *, attribute: str | None = None
) -> set[Rule]:
    """Rules of ``self.<owner>.<field>.<method>(...)`` in ``relative`` (``attribute``: the
    field when the owner is the client itself, ``self.<owner>.<method>(...)``)."""
    rules: set[Rule] = set()
    for field, method, call in attribute_calls(parse(relative), owner=owner):
        assert method in CLIENT_METHODS, ast.unparse(call)
        group, plural = fields[attribute if attribute is not None else field]
        sub = keyword(call, "subresource")
        if sub is not None:
            assert isinstance(sub, ast.Constant) and isinstance(sub.value, str)
            plural = f"{plural}/{sub.value}"
        rules.add((group, plural, method))
    return rules


def derived_rules() -> set[Rule]:
    """Every (group, resource, verb) the controller's code can send."""
    consumers, recorder, rules = controller_clients()
    rules |= followed("reconcilers/apply.py", "_c", consumers["Clients"])
    rules |= followed("reconcilers/pool.py", "_c", consumers["PoolClients"])
    claims = consumers["PoolClaims"]
    for owner in ("pods", "secrets"):
        rules |= followed("reconcilers/claim.py", f"_{owner}", claims, attribute=owner)
    for field, method, call in attribute_calls(parse("reconcilers/events.py"), owner="_events"):
        assert field == "" and method in CLIENT_METHODS, ast.unparse(call)
        rules.add((*recorder, method))
    return rules | lease_rules() | activation_key_rules()


EXPECTED: set[Rule] = {
    ("jupyter.org", "kernels", "list"),
    ("jupyter.org", "kernels", "watch"),
    ("jupyter.org", "kernels", "patch"),
    ("jupyter.org", "kernels", "delete"),
    ("jupyter.org", "kernels/status", "patch"),
    ("jupyter.org", "kernelpools", "list"),
    ("jupyter.org", "kernelpools", "watch"),
    ("jupyter.org", "kernelpools/status", "patch"),
    ("", "pods", "list"),
    ("", "pods", "watch"),
    ("", "pods", "create"),
    ("", "pods", "get"),
    ("", "pods", "patch"),
    ("", "pods", "delete"),
    ("", "services", "list"),
    ("", "services", "watch"),
    ("", "services", "create"),
    ("", "services", "patch"),
    ("", "secrets", "create"),
    ("", "secrets", "patch"),
    ("", "secrets", "get"),  # the activation key only (a Role with resourceNames)
    ("", "events", "list"),
    ("", "events", "watch"),
    ("", "events", "create"),
    ("", "events", "patch"),
    ("", "namespaces", "list"),
    ("", "namespaces", "watch"),
    ("coordination.k8s.io", "leases", "get"),
    ("coordination.k8s.io", "leases", "create"),
    ("coordination.k8s.io", "leases", "patch"),
}


CLUSTER_WIDE_ONLY: set[Rule] = {("", "namespaces", "list"), ("", "namespaces", "watch")}
ACTIVATION_SECRET = "kernel-controller-activation"


def controller_roles(docs: list[Doc]) -> list[Doc]:
    """The roles bound to the controller's ServiceAccount."""
    bound = {
        (b["roleRef"]["kind"], b["roleRef"]["name"])
        for b in docs
        if b["kind"] in ("RoleBinding", "ClusterRoleBinding")
    }
    return [d for d in docs if (d["kind"], d["metadata"]["name"]) in bound]


def table(rules: set[Rule]) -> str:
    return "\n".join(f"  {g or 'core'} {r} {v}" for g, r, v in sorted(rules))


def test_the_derivation_finds_what_the_code_calls() -> None:
    derived = derived_rules()
    assert derived == EXPECTED, f"derived from src/:\n{table(derived)}"


def test_config_rbac_grants_exactly_what_the_code_calls() -> None:
    docs = render(CONFIG / "rbac")
    roles = controller_roles(docs)
    assert sorted((r["kind"], r["metadata"]["name"]) for r in roles) == [
        ("ClusterRole", "kernel-controller"),
        ("Role", "kernel-controller-activation-key"),
        ("Role", "kernel-controller-leader-election"),
    ]
    granted = rules_of(roles, named=True)
    derived = derived_rules()
    assert granted == derived, (
        f"granted but never called:\n{table(granted - derived)}\n"
        f"called but not granted:\n{table(derived - granted)}"
    )
    by_name = {r["metadata"]["name"]: r for r in roles}
    leases = {r for r in derived if r[1] == "leases"}
    # the Lease only in the controller's namespace
    assert rules_of([by_name["kernel-controller-leader-election"]]) == leases
    # no Secret is read anywhere but the activation key, in the controller's namespace
    assert ("", "secrets", "get") not in rules_of([by_name["kernel-controller"]])
    assert_only_the_activation_key(by_name["kernel-controller-activation-key"])


def assert_only_the_activation_key(role: Doc) -> None:
    assert role["kind"] == "Role"
    assert role["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "resourceNames": [ACTIVATION_SECRET],
            "verbs": ["get"],
        }
    ]


def test_the_namespaced_overlay_grants_exactly_what_the_code_calls(tmp_path: Path) -> None:
    where = write_kustomization(
        tmp_path / "ns", resources=[CONFIG / "overlays" / "namespaced"], namespace="team-a"
    )
    docs = render(where)
    roles = controller_roles(docs)
    assert {r["kind"] for r in roles} == {"Role"}
    # --namespaces: no Namespace informer (a Role cannot grant a cluster-scoped resource)
    assert rules_of(roles, named=True) == derived_rules() - CLUSTER_WIDE_ONLY
    key_role = next(r for r in roles if r["metadata"]["name"] == "kernel-controller-activation-key")
    assert_only_the_activation_key(key_role)
    assert key_role["metadata"]["namespace"] == "team-a"


def test_user_roles_are_not_bound_to_the_controller() -> None:
    docs = render(CONFIG / "rbac")
    names = {r["metadata"]["name"] for r in controller_roles(docs)}
    assert not names & {"kernel-editor", "kernel-viewer"}
