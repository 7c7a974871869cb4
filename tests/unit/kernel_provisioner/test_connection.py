"""Unit tests of ``kernel_provisioner.connection``: the info Jupyter connects with."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kernel_provisioner.config import ConnectVia
from kernel_provisioner.connection import NotPublished, connection_info, key_secret

ANNOTATION = "jupyter.org/kernel-connection-info"
PUBLISHED = {
    "shell_port": 52317,
    "stdin_port": 52319,
    "iopub_port": 52318,
    "control_port": 52321,
    "hb_port": 52320,
    "ip": "k.ns.svc.cluster.local",
    "key": "the-kernel-id",
    "transport": "tcp",
    "signature_scheme": "hmac-sha256",
    "kernel_name": "",
}


def kernel(info: dict[str, Any] | None = None, *, secret: str | None = None) -> dict[str, Any]:
    annotations = {ANNOTATION: json.dumps(info or PUBLISHED)}
    status: dict[str, Any] = {"podIP": "10.0.0.9"}
    if secret:
        status["connection"] = {"keySecret": secret}
    return {"metadata": {"annotations": annotations}, "status": status}


def test_service_mode_keeps_the_annotations_host() -> None:
    info = connection_info(
        kernel(), connect_via=ConnectVia.SERVICE, kernel_name="python3-k8s", pod_ip="127.0.0.5"
    )
    assert info == {**PUBLISHED, "kernel_name": "python3-k8s"}


def test_pod_ip_mode_uses_the_ready_pods_ip() -> None:
    info = connection_info(
        kernel(), connect_via=ConnectVia.POD_IP, kernel_name="", pod_ip="127.0.0.5"
    )
    assert info["ip"] == "127.0.0.5"
    with pytest.raises(NotPublished, match="no IP"):
        connection_info(kernel(), connect_via=ConnectVia.POD_IP, kernel_name="", pod_ip=None)


def test_secret_mode_takes_the_key_from_the_secret() -> None:
    published = {k: v for k, v in PUBLISHED.items() if k != "key"}
    k = kernel(published, secret="k-connection")
    assert key_secret(k) == "k-connection"

    info = connection_info(
        k, connect_via=ConnectVia.SERVICE, kernel_name="", pod_ip=None, secret_key="s3cr3t"
    )
    assert info["key"] == "s3cr3t"
    with pytest.raises(NotPublished, match="no key"):
        connection_info(k, connect_via=ConnectVia.SERVICE, kernel_name="", pod_ip=None)


@pytest.mark.parametrize(
    "annotations",
    [{}, {ANNOTATION: "{not json"}, {ANNOTATION: json.dumps({"ip": "x"})}],
    ids=["missing", "not-json", "no-ports"],
)
def test_an_unusable_annotation_is_not_published(annotations: dict[str, str]) -> None:
    with pytest.raises(NotPublished):
        connection_info(
            {"metadata": {"annotations": annotations}},
            connect_via=ConnectVia.SERVICE,
            kernel_name="",
            pod_ip=None,
        )
