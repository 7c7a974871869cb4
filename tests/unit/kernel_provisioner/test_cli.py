"""Unit tests of ``jupyter kernel-controller install-kernelspec`` (writes into a temporary
prefix; jupyter_client then finds the kernelspec there)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jupyter_client.kernelspec import KernelSpecManager

from kernel_provisioner.cli import main


def test_install_writes_a_kernelspec_jupyter_finds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    template = tmp_path / "template.json"
    template.write_text(json.dumps({"spec": {"nodeSelector": {"pool": "kernels"}}}))
    code = main(
        [
            "install-kernelspec",
            "--name=py-k8s",
            "--display-name=Python (Kubernetes)",
            "--image=registry.example.org/kernel-py:1",
            "--namespace=team-a",
            "--connect-via=pod-ip",
            "--idle-timeout=600",
            "--launch-timeout=60",
            f"--template={template}",
            f"--prefix={tmp_path / 'prefix'}",
        ]
    )

    where = tmp_path / "prefix" / "share" / "jupyter" / "kernels" / "py-k8s"
    assert code == 0
    assert capsys.readouterr().out == f"installed kernelspec py-k8s in {where}\n"
    spec = KernelSpecManager(kernel_dirs=[str(where.parent)]).get_kernel_spec("py-k8s")
    assert spec.display_name == "Python (Kubernetes)"
    assert spec.interrupt_mode == "message"
    assert spec.argv == []
    assert spec.metadata["kernel_provisioner"] == {
        "provisioner_name": "kernel-controller-provisioner",
        "config": {
            "image": "registry.example.org/kernel-py:1",
            "namespace": "team-a",
            "connect_via": "pod-ip",
            "idle_timeout": 600,
            "launch_timeout": 60.0,
            "template": {"spec": {"nodeSelector": {"pool": "kernels"}}},
        },
    }


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["install-kernelspec", "--connect-via=ingress"], "invalid choice"),
        (["install-kernelspec", "--launch-timeout=0", "--image=i"], "greater than 0"),
        (["install-kernelspec", "--image=i", "--user", "--sys-prefix"], "not allowed with"),
        (["install-kernelspec", "--image=i", "--name=bad name"], "kernelspec name"),
        (["install-kernelspec", "--image=i", "--template=/nonexistent.json"], "nonexistent"),
        ([], "required"),
    ],
    ids=["connect-via", "timeout", "two-places", "bad-name", "no-template", "no-command"],
)
def test_bad_options_exit_2_with_one_message(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*argv, f"--prefix={tmp_path}"] if "--user" not in argv and argv else argv)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err
