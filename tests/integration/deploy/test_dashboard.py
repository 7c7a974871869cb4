"""``config/dashboards/kernel-controller.json``: every PromQL expression parses (PyPI
``promql-parser``), and every metric, label and literal label value it selects exists in a
live scrape of a controller that has served, readied and culled Kernels."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import promql_parser

from controllerprocess import ControllerProcess
from deploytest import CONFIG
from eventually import eventually
from kerneltest import Clients, kernel_body

DASHBOARD = CONFIG / "dashboards" / "kernel-controller.json"
TIMEOUT = 30.0
NOW = "2026-01-01T00:00:00Z"
# Grafana's variables, replaced by values of their kind before parsing.
VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$namespace": ".*"}
Labels = tuple[tuple[str, str], ...]


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def panels() -> Iterator[dict[str, Any]]:
    for panel in dashboard()["panels"]:
        yield panel
        yield from panel.get("panels", ())


def expressions() -> list[str]:
    return [t["expr"] for p in panels() for t in p.get("targets", ())]


def promql(expr: str) -> str:
    for variable, value in VARIABLES.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"unknown variable in {expr}"
    return expr


def selectors(expr: promql_parser.Expr) -> list[promql_parser.VectorSelector]:
    found: list[promql_parser.VectorSelector] = []

    def visit(node: promql_parser.Expr) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            found.append(node)
        elif isinstance(node, promql_parser.MatrixSelector):
            found.append(node.vector_selector)

    promql_parser.walk(expr, visit)
    return found


def test_the_dashboard_is_well_formed() -> None:
    data = dashboard()
    ids = [p["id"] for p in panels()]
    assert len(ids) == len(set(ids))
    for panel in panels():
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        if panel["type"] != "row":
            assert panel["targets"], panel["title"]
            assert panel["datasource"]["uid"] == "${datasource}"
    variables = {v["name"]: v for v in data["templating"]["list"]}
    assert variables["datasource"]["query"] == "prometheus"
    assert len(expressions()) >= 15


def test_every_expression_parses() -> None:
    for expr in expressions():
        parsed = promql_parser.parse(promql(expr))  # raises ValueError on a syntax error
        assert selectors(parsed), expr
        for selector in selectors(parsed):
            assert selector.name and re.fullmatch(r"[a-zA-Z_:][a-zA-Z0-9_:]*", selector.name)


def test_every_metric_in_the_dashboard_is_exported(
    spawn: Callable[..., ControllerProcess], clients: Clients, kubeconfig: str
) -> None:
    ns = clients.namespace
    proc = spawn(
        kubeconfig,
        f"--namespaces={ns}",
        "--enable-leader-election",
        f"--leader-election-namespace={ns}",
    )
    proc.wait_ready()
    for name in ("ready", "culled"):
        clients.kernels.create(kernel_body(name))
    for name in ("ready", "culled"):
        eventually(lambda n=name: clients.get(clients.pods, n), timeout=TIMEOUT, message="no Pod")
    clients.set_pod_status(
        "ready",
        {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": NOW}],
        },
    )
    clients.set_pod_status("culled", {"phase": "Succeeded"})
    eventually(
        lambda: proc.value("kernel_culling_total", namespace=ns) == 1.0,
        timeout=TIMEOUT,
        message="not culled",
    )
    eventually(
        lambda: proc.value("kernel_startup_seconds_count", source="cold") == 1.0,
        timeout=TIMEOUT,
        message="no startup observed",
    )
    eventually(
        lambda: proc.value("leader_election_master_status", name="kernel-controller") == 1.0,
        timeout=TIMEOUT,
        message="not leading",
    )

    scraped: dict[str, list[Labels]] = {}
    for metric, labels in proc.metrics():
        scraped.setdefault(metric, []).append(labels)

    missing: list[str] = []
    for expr in expressions():
        for selector in selectors(promql_parser.parse(promql(expr))):
            assert selector.name is not None
            series = scraped.get(selector.name)
            if series is None:
                missing.append(selector.name)
                continue
            for matcher in selector.matchers.matchers:
                values = {dict(labels).get(matcher.name) for labels in series}
                assert values - {None}, f"{selector.name} has no label {matcher.name!r}"
                if matcher.op == promql_parser.MatchOp.Equal:
                    assert matcher.value in values, f"{selector.name}{{{matcher.name}=...}}"
    assert not missing, f"not exported: {sorted(set(missing))}"

    # The namespace variable's query: label_values(<metric>, <label>).
    variables = {v["name"]: v for v in dashboard()["templating"]["list"]}
    query = variables["namespace"]["query"]["query"]
    match = re.fullmatch(r"label_values\((\w+), (\w+)\)", query)
    assert match, query
    assert any(dict(labels).get(match.group(2)) == ns for labels in scraped[match.group(1)])
