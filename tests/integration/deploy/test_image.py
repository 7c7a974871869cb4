"""The ``Dockerfile``: its shape (multi-stage, the venv copied into a slim final stage that
runs nothing at build time, non-root, the controller as entry point), and its builder stage
replayed outside Docker: the build context that ``.dockerignore`` lets through, the same COPY
and RUN steps (``/opt/venv`` and ``/src`` moved under a temporary directory), then the
installed ``kernel-controller --help``. Needs PyPI (as the image build does)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from deploytest import REPO

PIP_SECONDS = 240


@dataclass
class Stage:
    image: str
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def parse_dockerfile(text: str) -> list[Stage]:
    """Instructions per stage (continuations joined, comments dropped, global ARGs expanded
    in FROM)."""
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in lines:
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "ARG" and not stages:
            name, _, default = rest.partition("=")
            args[name] = default
        elif keyword == "FROM":
            image, _, name = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], rest).partition(
                " AS "
            )
            stages.append(Stage(image=image.strip(), name=name.strip()))
        else:
            stages[-1].instructions.append((keyword, rest.strip()))
    return stages


def ignored(path: str, patterns: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for negated, pattern in patterns:
        if any(pattern.fullmatch(c) for c in candidates):
            excluded = not negated
    return excluded


def dockerignore() -> list[tuple[bool, re.Pattern[str]]]:
    patterns = []
    for raw in (REPO / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        glob = line.lstrip("!").strip("/")
        regex = ""
        i = 0
        while i < len(glob):
            if glob.startswith("**/", i):
                regex, i = regex + "(?:.*/)?", i + 3
            elif glob.startswith("**", i):
                regex, i = regex + ".*", i + 2
            elif glob[i] == "*":
                regex, i = regex + "[^/]*", i + 1
            elif glob[i] == "?":
                regex, i = regex + "[^/]", i + 1
            elif glob[i] == "[":
                end = glob.index("]", i)
                regex, i = regex + glob[i : end + 1], end + 1
            else:
                regex, i = regex + re.escape(glob[i]), i + 1
        patterns.append((negated, re.compile(regex)))
    return patterns


def copy_into(sources: list[str], dest: Path) -> None:
    """``COPY sources... dest`` from the repository, as the build context admits them."""
    patterns = dockerignore()
    for source in sources:
        origin = REPO / source.rstrip("/")
        files = (
            [origin] if origin.is_file() else sorted(p for p in origin.rglob("*") if p.is_file())
        )
        for path in files:
            relative = str(path.relative_to(REPO))
            if ignored(relative, patterns):
                continue
            target = dest / (path.name if origin.is_file() else path.relative_to(origin))
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)


def test_the_dockerfile_is_multi_stage_slim_and_non_root() -> None:
    builder, final = parse_dockerfile((REPO / "Dockerfile").read_text())
    assert builder.name == "builder"
    assert builder.image == final.image == "python:3.11-slim"  # the venv's symlinks hold
    assert final.all("RUN") == []  # nothing but the copied venv
    assert final.all("COPY") == ["--from=builder /opt/venv /opt/venv"]
    assert final.all("USER") == ["65532:65532"]
    env = " ".join(final.all("ENV"))
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    assert "PATH=/opt/venv/bin:$PATH" in env
    (entrypoint,) = final.all("ENTRYPOINT")
    assert json.loads(entrypoint) == ["/opt/venv/bin/kernel-controller"]
    installs = [r for r in builder.all("RUN") if "pip install" in r]
    assert installs and all("[" not in r for r in installs), "no extras in the image"


def test_the_build_context_holds_only_what_pip_reads() -> None:
    patterns = dockerignore()
    for kept in ("pyproject.toml", "README.md", "src/kernel_controller/cli.py"):
        assert not ignored(kept, patterns), kept
    for dropped in (
        ".venv/bin/python",
        ".git/HEAD",
        ".cluster/kubeconfig",
        "tests/conftest.py",
        "config/default/kustomization.yaml",
        "src/jupyter_kernel_controller.egg-info/PKG-INFO",
        "src/informers/__pycache__/store.cpython-311.pyc",
    ):
        assert ignored(dropped, patterns), dropped


@pytest.mark.pypi
@pytest.mark.timeout(PIP_SECONDS + 60)
def test_the_builder_steps_install_a_working_controller(tmp_path: Path) -> None:
    builder, final = parse_dockerfile((REPO / "Dockerfile").read_text())
    root = tmp_path / "image"
    moved = {"/opt/venv": str(root / "opt" / "venv")}
    shims = tmp_path / "shims"  # `python` in RUN: the base image's interpreter, here ours
    shims.mkdir()
    (shims / "python").symlink_to(sys.executable)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))}
    env["PATH"] = f"{shims}:{env.get('PATH', '')}"
    workdir = root
    for keyword, args in builder.instructions:
        if keyword == "ENV":
            for assignment in shlex.split(args):
                name, _, value = assignment.partition("=")
                env[name] = value
        elif keyword == "WORKDIR":
            workdir = root / args.lstrip("/")
            moved[args] = str(workdir)
            workdir.mkdir(parents=True, exist_ok=True)
        elif keyword == "COPY":
            *sources, dest = shlex.split(args)
            copy_into(sources, workdir / dest)
        elif keyword == "RUN":
            words = [w for w in shlex.split(args) if not w.startswith("--mount=")]
            command = " ".join(words)
            for old, new in sorted(moved.items(), key=lambda kv: -len(kv[0])):
                command = re.sub(rf"(?<![\w/]){re.escape(old)}(?![\w-])", new, command)
            subprocess.run(
                ["bash", "-euo", "pipefail", "-c", command],
                cwd=workdir,
                env=env,
                check=True,
                timeout=PIP_SECONDS,
            )
        else:
            raise AssertionError(f"the replay does not know {keyword} {args}")

    (entrypoint,) = final.all("ENTRYPOINT")
    program = json.loads(entrypoint)[0].replace("/opt/venv", moved["/opt/venv"])
    done = subprocess.run(
        [program, "--help"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"},
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "--metrics-addr" in done.stdout
    venv = Path(moved["/opt/venv"])
    assert not (venv / "bin" / "pytest").exists(), "dev extras installed"
    assert not (venv / "bin" / "kubectl").exists(), "dev extras installed"
