"""The ``Dockerfile``'s shape (multi-stage, the venv copied into a slim final stage that runs
nothing at build time, non-root, the controller as entry point) and the build context that
``.dockerignore`` lets through. ``test_containers.py`` builds the image and runs it."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from deploytest import REPO


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
