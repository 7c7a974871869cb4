"""Unit tests of ``kernel_provisioner.kernelbody``: the Kernel's name and body."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest

from kernel_provisioner.config import ConnectVia, LaunchConfig
from kernel_provisioner.kernelbody import (
    LAUNCHED_BY,
    LAUNCHED_BY_LABEL,
    USERNAME_LABEL,
    kernel_body,
    kernel_name,
)

DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
KID = "8a5b7883-51ae-47bc-9590-3adab6a70e1f"


def config(**changes: Any) -> LaunchConfig:
    values: dict[str, Any] = {
        "namespace": "ns",
        "image": "kernel-py:1",
        "template": None,
        "connect_via": ConnectVia.SERVICE,
        "launch_timeout": 300.0,
        "idle_timeout": None,
        "kubeconfig": None,
        "username": "alice",
        "working_dir": None,
        "env": {"KERNEL_USERNAME": "alice"},
    }
    values.update(changes)
    return LaunchConfig(**values)


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        ("alice", f"alice-{KID}"),
        ("Alice.Smith@example.org", f"alice-smith-example-org-{KID}"),
        ("", f"kernel-{KID}"),
        ("---", f"kernel-{KID}"),
        ("42", f"k42-{KID}"),
        ("a-very-long-user-name-that-does-not-fit-at-all", f"a-very-long-user-name-that-{KID}"),
    ],
    ids=["plain", "email", "empty", "dashes", "digit", "long"],
)
def test_kernel_name(user: str, expected: str) -> None:
    name = kernel_name(user, KID)
    assert name == expected
    assert len(name) <= 63 and DNS_1035.match(name)


def test_names_are_valid_for_any_user_and_id() -> None:
    for user in ("ünïcödé", "_", "UPPER", "x" * 200, "a--b", "9lives"):
        for kid in (str(uuid.uuid4()), "not a uuid at all!", "K" * 80):
            name = kernel_name(user, kid)
            assert len(name) <= 63 and DNS_1035.match(name), (user, kid, name)


def test_body_labels_image_env_and_idle_timeout() -> None:
    body = kernel_body(
        name="alice-k",
        kernel_id=KID,
        config=config(
            idle_timeout=600,
            working_dir="/home/alice",
            env={"KERNEL_USERNAME": "alice", "KERNEL_LANGUAGE": "python"},
        ),
    )

    assert body["apiVersion"] == "jupyter.org/v1" and body["kind"] == "Kernel"
    assert body["metadata"] == {
        "name": "alice-k",
        "labels": {LAUNCHED_BY_LABEL: LAUNCHED_BY, USERNAME_LABEL: "alice"},
    }
    assert body["spec"]["idleTimeoutSeconds"] == 600
    (container,) = body["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "kernel-py:1"
    assert container["workingDir"] == "/home/alice"
    assert container["env"] == [
        {"name": "KERNEL_ID", "value": KID},
        {"name": "KERNEL_LANGUAGE", "value": "python"},
        {"name": "KERNEL_USERNAME", "value": "alice"},
    ]


def test_the_template_is_the_base_and_ours_win() -> None:
    template = {
        "metadata": {"labels": {"team": "a"}},
        "spec": {
            "nodeSelector": {"pool": "kernels"},
            "containers": [
                {
                    "name": "main",
                    "image": "template-image:1",
                    "env": [
                        {"name": "KERNEL_ID", "value": "stale"},
                        {"name": "EXTRA", "value": "kept"},
                    ],
                },
                {"name": "sidecar", "image": "sidecar:1"},
            ],
        },
    }
    body = kernel_body(name="k", kernel_id=KID, config=config(template=template))

    spec = body["spec"]["template"]["spec"]
    assert body["spec"]["template"]["metadata"] == {"labels": {"team": "a"}}
    assert spec["nodeSelector"] == {"pool": "kernels"}
    main, sidecar = spec["containers"]
    assert main["image"] == "kernel-py:1"  # the configured image over the template's
    assert main["env"][0] == {"name": "EXTRA", "value": "kept"}
    assert {"name": "KERNEL_ID", "value": KID} in main["env"]
    assert sidecar == {"name": "sidecar", "image": "sidecar:1"}
    assert template["spec"]["containers"][0]["image"] == "template-image:1"  # not mutated
    assert "idleTimeoutSeconds" not in body["spec"]


def test_the_template_image_stays_without_an_image_setting() -> None:
    template = {"spec": {"containers": [{"name": "main", "image": "template-image:1"}]}}
    body = kernel_body(name="k", kernel_id=KID, config=config(image=None, template=template))
    assert body["spec"]["template"]["spec"]["containers"][0]["image"] == "template-image:1"


def test_a_pooled_kernel_names_its_pool_and_its_id() -> None:
    body = kernel_body(name="alice-x", kernel_id=KID, config=config(pool="warm", image=None))
    assert body["spec"] == {"poolRef": {"name": "warm"}}  # no template: the pool's is used
    assert body["metadata"]["annotations"] == {"jupyter.org/kernel-id": KID}

    with_image = kernel_body(name="alice-x", kernel_id=KID, config=config(pool="warm"))
    assert with_image["spec"]["poolRef"] == {"name": "warm"}
    (main,) = with_image["spec"]["template"]["spec"]["containers"]
    assert main["image"] == "kernel-py:1"  # for a cold start


def test_an_unpooled_kernel_has_no_pool_and_no_id_annotation() -> None:
    body = kernel_body(name="alice-x", kernel_id=KID, config=config())
    assert "poolRef" not in body["spec"]
    assert "annotations" not in body["metadata"]
