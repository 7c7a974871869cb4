"""Unit tests of ``kernel_provisioner.config``: where each setting comes from, and bad values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kernel_provisioner.config import ConfigError, ConnectVia, resolve


def run(config: dict[str, Any], env: dict[str, str] | None = None, **kw: Any) -> Any:
    return resolve(config, env or {}, default_username="jovyan", **kw)


def test_defaults(tmp_path: Path) -> None:
    launch = run({"image": "kernel-py:1"}, namespace_file=tmp_path / "none")

    assert launch.namespace == "default"
    assert launch.image == "kernel-py:1"
    assert launch.connect_via is ConnectVia.SERVICE
    assert launch.launch_timeout == 300.0
    assert launch.idle_timeout is None
    assert launch.kubeconfig is None
    assert launch.username == "jovyan"
    assert launch.working_dir is None
    assert launch.env == {"KERNEL_USERNAME": "jovyan"}


def test_the_kernelspec_wins_over_the_environment() -> None:
    config = {
        "namespace": "team-a",
        "image": "spec-image:1",
        "launch_timeout": 30,
        "idle_timeout": 600,
        "kubeconfig": "/spec/kubeconfig",
        "connect_via": "pod-ip",
    }
    env = {
        "KERNEL_NAMESPACE": "env-ns",
        "KERNEL_IMAGE": "env-image:2",
        "KERNEL_LAUNCH_TIMEOUT": "5",
        "KERNEL_IDLE_TIMEOUT": "60",
        "KUBECONFIG": "/env/kubeconfig",
    }
    launch = run(config, env)

    assert (launch.namespace, launch.image) == ("team-a", "spec-image:1")
    assert (launch.launch_timeout, launch.idle_timeout) == (30.0, 600)
    assert launch.kubeconfig == "/spec/kubeconfig"
    assert launch.connect_via is ConnectVia.POD_IP


def test_the_environment_fills_what_the_kernelspec_leaves_out(tmp_path: Path) -> None:
    namespace_file = tmp_path / "namespace"
    namespace_file.write_text("in-cluster\n")
    env = {
        "KERNEL_IMAGE": "env-image:2",
        "KERNEL_LAUNCH_TIMEOUT": "45.5",
        "KERNEL_IDLE_TIMEOUT": "120",
        "KUBECONFIG": "/env/kubeconfig",
        "KERNEL_USERNAME": "alice",
        "KERNEL_WORKING_DIR": "/home/alice/work",
    }
    launch = run({}, env, namespace_file=namespace_file)

    assert launch.namespace == "in-cluster"
    assert launch.image == "env-image:2"
    assert (launch.launch_timeout, launch.idle_timeout) == (45.5, 120)
    assert launch.kubeconfig == "/env/kubeconfig"
    assert launch.username == "alice"
    assert launch.working_dir == "/home/alice/work"
    assert run({}, {**env, "KERNEL_NAMESPACE": "env-ns"}).namespace == "env-ns"


def test_only_kernel_variables_that_are_ours_to_pass_reach_the_container() -> None:
    env = {
        "KERNEL_LANGUAGE": "python",
        "KERNEL_SPARK_CONTEXT_INIT_MODE": "none",
        "KERNEL_WORKING_DIR": "/work",
        "KERNEL_USERNAME": "bob",
        "KERNEL_ID": "from-env",
        "KERNEL_KEY": "never",
        "KERNEL_IP": "10.1.2.3",
        "KERNEL_SHELL_PORT": "1234",
        "KERNEL_HB_PORT": "1235",
        "KERNEL_NAMESPACE": "ns",
        "KERNEL_IMAGE": "img:1",
        "KERNEL_LAUNCH_TIMEOUT": "10",
        "KERNEL_IDLE_TIMEOUT": "10",
        "HOME": "/root",
        "JUPYTER_TOKEN": "never",
    }
    launch = run({}, env)

    assert launch.env == {
        "KERNEL_LANGUAGE": "python",
        "KERNEL_SPARK_CONTEXT_INIT_MODE": "none",
        "KERNEL_WORKING_DIR": "/work",
        "KERNEL_USERNAME": "bob",
    }


def test_a_template_with_an_image_needs_no_image_setting() -> None:
    template = {"spec": {"containers": [{"name": "k", "image": "tpl:1"}]}}
    launch = run({"template": template})
    assert launch.image is None
    assert launch.template == template


def test_a_pool_needs_no_image_and_may_come_from_the_environment() -> None:
    assert run({"pool": "warm"}).pool == "warm"
    launch = run({}, {"KERNEL_POOL": "gpu-pool", "KERNEL_IMAGE": "i:1"})
    assert (launch.pool, launch.image) == ("gpu-pool", "i:1")
    assert "KERNEL_POOL" not in launch.env  # read here, not passed on
    assert run({"image": "i"}).pool is None


@pytest.mark.parametrize(
    ("config", "env", "message"),
    [
        ({}, {}, "no kernel image"),
        ({"image": "i", "imagePullPolicy": "Always"}, {}, "unknown kernel_provisioner config"),
        ({"image": "i", "connect_via": "ingress"}, {}, "'connect_via' must be one of"),
        ({"image": "i", "launch_timeout": "soon"}, {}, "launch_timeout"),
        ({"image": "i", "launch_timeout": 0}, {}, "greater than 0"),
        ({"image": "i"}, {"KERNEL_LAUNCH_TIMEOUT": "-1"}, "KERNEL_LAUNCH_TIMEOUT"),
        ({"image": "i", "idle_timeout": 1.5}, {}, "whole seconds"),
        ({"image": "i"}, {"KERNEL_IDLE_TIMEOUT": "inf"}, "finite number"),
        ({"image": 7}, {}, "'image' must be a string"),
        ({"image": "i", "template": {"containers": []}}, {}, "must be a Pod template"),
        ({"image": "i", "template": {"spec": {"containers": {}}}}, {}, "must be a list"),
        ({"pool": "Warm Pool"}, {}, "not the name of a KernelPool"),
    ],
    ids=[
        "no-image",
        "unknown-key",
        "bad-connect-via",
        "timeout-not-a-number",
        "timeout-zero",
        "timeout-negative-env",
        "idle-fraction",
        "idle-infinite-env",
        "image-not-text",
        "template-not-a-pod-template",
        "containers-not-a-list",
        "pool-not-a-name",
    ],
)
def test_bad_settings_are_named(config: dict[str, Any], env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        run(config, env)
