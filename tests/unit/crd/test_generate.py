"""hack/crd/generate.py without a cluster: $ref inlining, the structural conversion rules,
deterministic rendering and the command line (on a small synthetic OpenAPI document)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from crd import generate
from crd.generate import SchemaConverter, SchemaError, build_crd, build_pool_crd, render

REF = "#/components/schemas/"


def ref(name: str) -> dict[str, str]:
    return {"$ref": REF + name}


def openapi() -> dict[str, Any]:
    """A miniature ``/openapi/v3/api/v1`` with the shapes the generator relies on."""
    core = "io.k8s.api.core.v1."
    schemas: dict[str, Any] = {
        core + "PodSpec": {
            "description": "PodSpec is a description of a pod.",
            "type": "object",
            "required": ["containers"],
            "properties": {
                "containers": {
                    "type": "array",
                    "items": ref(core + "Container"),
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["name"],
                    "x-kubernetes-patch-merge-key": "name",
                    "x-kubernetes-patch-strategy": "merge",
                },
                "initContainers": {"type": "array", "items": ref(core + "Container")},
                "restartPolicy": {"type": "string", "enum": ["Always", "Never", "OnFailure"]},
                "imagePullSecrets": {
                    "type": "array",
                    "items": {"allOf": [ref(core + "LocalObjectReference")], "default": {}},
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["name"],
                },
                "overhead": {"type": "object", "additionalProperties": ref(QUANTITY)},
            },
        },
        core + "Container": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "default": "", "description": "the name"},
                "image": {"type": "string"},
                "env": {
                    "type": "array",
                    "items": {"allOf": [ref(core + "EnvVar")], "default": {}},
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["name"],
                },
                "ports": {
                    "type": "array",
                    "items": ref(core + "ContainerPort"),
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["containerPort", "protocol"],
                },
                "probePort": {"allOf": [ref(INT_OR_STRING)], "description": "port"},
            },
        },
        core + "EnvVar": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "default": ""},
                "value": {"type": "string"},
                "valueFrom": {"type": "object", "properties": {"key": {"type": "string"}}},
            },
        },
        core + "ContainerPort": {
            "type": "object",
            "required": ["containerPort"],
            "properties": {
                "containerPort": {"type": "integer", "format": "int32", "default": 0},
                "protocol": {"type": "string", "default": "TCP", "enum": ["TCP", "UDP"]},
            },
        },
        core + "LocalObjectReference": {
            "type": "object",
            "properties": {"name": {"type": "string", "default": ""}},
            "x-kubernetes-map-type": "atomic",
        },
        core + "ContainerState": {
            "type": "object",
            "properties": {"running": {"allOf": [ref(core + "ContainerStateRunning")]}},
        },
        core + "ContainerStateRunning": {
            "type": "object",
            "properties": {"startedAt": ref(TIME)},
        },
        TIME: {"type": "string", "format": "date-time"},
        QUANTITY: {"oneOf": [{"type": "string"}, {"type": "number"}]},
        INT_OR_STRING: {"format": "int-or-string", "oneOf": [{"type": "integer"}]},
    }
    return {"openapi": "3.0.0", "info": {"version": "1.99"}, "components": {"schemas": schemas}}


QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
TIME = "io.k8s.apimachinery.pkg.apis.meta.v1.Time"
POD_SPEC = "io.k8s.api.core.v1.PodSpec"


def walk(node: object) -> list[dict[str, Any]]:
    """Every schema dict under ``node``."""
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        found.append(node)
        for value in node.values():
            found += walk(value)
    elif isinstance(node, list):
        for value in node:
            found += walk(value)
    return found


def test_references_are_inlined_without_descriptions_or_patch_keys() -> None:
    pod = SchemaConverter(openapi()["components"]["schemas"]).definition(POD_SPEC)

    keys = {key for node in walk(pod) for key in node}
    assert not keys & {"$ref", "allOf", "description", "x-kubernetes-patch-merge-key"}
    container = pod["properties"]["containers"]["items"]
    assert container["required"] == ["name"]
    assert pod["properties"]["containers"]["x-kubernetes-list-type"] == "map"
    running = SchemaConverter(openapi()["components"]["schemas"]).definition(
        "io.k8s.api.core.v1.ContainerState"
    )["properties"]["running"]
    assert running["properties"]["startedAt"] == {"type": "string", "format": "date-time"}


def test_each_use_of_a_reference_is_an_independent_copy() -> None:
    converter = SchemaConverter(openapi()["components"]["schemas"])
    pod = converter.definition(POD_SPEC)
    containers = pod["properties"]["containers"]["items"]
    init = pod["properties"]["initContainers"]["items"]

    containers["properties"]["image"]["minLength"] = 1

    assert init["properties"]["image"] == {"type": "string"}
    again = converter.definition(POD_SPEC)
    assert again["properties"]["containers"]["items"]["properties"]["image"] == {"type": "string"}


def test_int_or_string_and_quantity_become_int_or_string() -> None:
    pod = SchemaConverter(openapi()["components"]["schemas"]).definition(POD_SPEC)

    port = pod["properties"]["containers"]["items"]["properties"]["probePort"]
    assert port == {
        "anyOf": [{"type": "integer"}, {"type": "string"}],
        "x-kubernetes-int-or-string": True,
    }
    quantity = pod["properties"]["overhead"]["additionalProperties"]
    assert quantity["anyOf"] == [{"type": "integer"}, {"type": "string"}]
    assert quantity["x-kubernetes-int-or-string"] is True
    assert "oneOf" not in quantity


def test_defaults_are_dropped_except_for_list_map_keys_that_are_not_required() -> None:
    pod = SchemaConverter(openapi()["components"]["schemas"]).definition(POD_SPEC)
    container = pod["properties"]["containers"]["items"]
    port = container["properties"]["ports"]["items"]["properties"]
    pull_secret = pod["properties"]["imagePullSecrets"]["items"]["properties"]

    assert port["protocol"]["default"] == "TCP"  # map key, not required
    assert "default" not in port["containerPort"]  # map key, but required
    assert pull_secret["name"]["default"] == ""
    assert "default" not in container["properties"]["name"]
    # protocol of containers[] and initContainers[] ports, name of imagePullSecrets[]
    assert sorted(n["default"] for n in walk(pod) if "default" in n) == ["", "TCP", "TCP"]


def test_list_map_key_neither_required_nor_defaulted_is_an_error() -> None:
    doc = openapi()
    ref_schema = doc["components"]["schemas"]["io.k8s.api.core.v1.LocalObjectReference"]
    del ref_schema["properties"]["name"]["default"]

    with pytest.raises(SchemaError, match="neither required nor defaulted"):
        SchemaConverter(doc["components"]["schemas"]).definition(POD_SPEC)


def test_unknown_schema_key_is_an_error_not_silently_dropped() -> None:
    doc = openapi()
    doc["components"]["schemas"][POD_SPEC]["properties"]["restartPolicy"]["oneOf"] = []

    with pytest.raises(SchemaError, match=r"PodSpec\.restartPolicy: schema key 'oneOf'"):
        SchemaConverter(doc["components"]["schemas"]).definition(POD_SPEC)


def test_reference_cycle_is_an_error() -> None:
    schemas = {
        "A": {"type": "object", "properties": {"b": ref("B")}},
        "B": {"type": "object", "properties": {"a": {"allOf": [ref("A")]}}},
    }

    with pytest.raises(SchemaError, match="reference cycle A -> B -> A"):
        SchemaConverter(schemas).definition("A")


def test_port_rule_is_only_on_the_containers_copy_of_env() -> None:
    crd = build_crd(openapi())
    pod = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"][
        "properties"
    ]["template"]["properties"]["spec"]

    env = pod["properties"]["containers"]["items"]["properties"]["env"]["items"]
    init_env = pod["properties"]["initContainers"]["items"]["properties"]["env"]["items"]
    assert "KERNEL_SHELL_PORT" in env["x-kubernetes-validations"][0]["rule"]
    assert "x-kubernetes-validations" not in init_env
    assert pod["properties"]["containers"]["minItems"] == 1


def test_versions_share_one_schema_and_only_v1_is_storage() -> None:
    crd = build_crd(openapi())

    versions = crd["spec"]["versions"]
    assert [(v["name"], v["storage"], v.get("deprecated", False)) for v in versions] == [
        ("v1", True, False),
        ("v1beta1", False, True),
        ("v1alpha1", False, True),
    ]
    assert all(v["schema"] == versions[0]["schema"] for v in versions)
    assert versions[0]["schema"] is not versions[1]["schema"]


def test_render_is_deterministic_block_yaml_without_aliases() -> None:
    doc = openapi()
    shuffled = copy.deepcopy(doc)
    shuffled["components"]["schemas"] = dict(reversed(list(doc["components"]["schemas"].items())))

    text = render(build_crd(doc))

    assert text == render(build_crd(shuffled))
    assert text.startswith("# Code generated by hack/crd/generate.py")
    assert "DO NOT EDIT" in text.splitlines()[1]
    assert "&id" not in text and "*id" not in text
    assert "{" not in text.replace("{}", "")  # block style (only empty maps are inline)
    assert yaml.safe_load(text) == build_crd(doc)
    shared: dict[str, Any] = {"type": "string"}
    assert "&" not in render({"a": shared, "b": shared})


def test_main_writes_the_file_and_stdout(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(generate, "fetch_openapi", lambda kubeconfig: openapi())
    output = tmp_path / "bases" / "kernels.yaml"

    assert generate.main(["--kubeconfig", "kc", "--output", str(output)]) == 0
    assert generate.main(["--kubeconfig", "kc", "--output", "-"]) == 0

    assert output.read_text() == render(build_crd(openapi()))
    pools = output.with_name("jupyter.org_kernelpools.yaml")  # beside it by default
    assert pools.read_text() == render(build_pool_crd(openapi()))
    assert capsys.readouterr().out == f"{output.read_text()}---\n{pools.read_text()}"


def test_main_reports_a_bad_document_with_exit_code_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(generate, "fetch_openapi", lambda kubeconfig: {"openapi": "3.0.0"})

    assert generate.main(["--kubeconfig", "kc", "--output", "-"]) == 1
    assert "no components.schemas" in capsys.readouterr().err
