"""The documentation cannot drift from the product: every shell block a page shows is either
run here, in order, against the real control plane with the controller and the local node
(``<!-- run -->``), its output checked where the page shows one (``<!-- output -->``), or says
why not (``<!-- not run: … -->``); every flag of the CLI and every field of the CRDs is
documented, and nothing documented is missing from them; the README's first screen shows the
two commands."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from controllerprocess import ControllerProcess
from docstest import DOCS, NOT_RUN, REPO, RUN, blocks, missing_lines, pages_in_nav
from kernel_controller.cli import OPTIONS

RUNNABLE = [p for p in pages_in_nav() if p.is_file() and any(b.marker == RUN for b in blocks(p))]
BLOCK_SECONDS = 240
CRDS = REPO / "config" / "crd" / "bases"
HAND_WRITTEN = [p for p in DOCS.rglob("*.md") if p.name != "api-reference.md"]


def test_every_shell_block_is_run_or_says_why_not() -> None:
    unmarked = [
        f"{b.page.relative_to(REPO)}:{b.line}"
        for p in DOCS.rglob("*.md")
        for b in blocks(p)
        if b.marker != RUN and not NOT_RUN.match(b.marker)
    ]
    assert not unmarked, f"shell blocks neither <!-- run --> nor <!-- not run: why -->: {unmarked}"
    assert RUNNABLE, "no page has a runnable block"


def test_every_page_is_in_the_nav() -> None:
    generated = {DOCS / "use" / "api-reference.md"}
    assert set(DOCS.rglob("*.md")) - generated <= set(pages_in_nav())


@pytest.mark.timeout(900)
@pytest.mark.parametrize("page", RUNNABLE, ids=[str(p.relative_to(DOCS)) for p in RUNNABLE])
def test_the_pages_commands_run_and_show_what_the_page_shows(
    page: Path,
    controller: Callable[..., ControllerProcess],
    kubeconfig: str,
    namespace: str,
    tmp_path: Path,
) -> None:
    controller()
    config = yaml.safe_load(Path(kubeconfig).read_text())
    for context in config["contexts"]:
        context["context"]["namespace"] = namespace  # `kubectl` uses "your current namespace"
    user_kubeconfig = tmp_path / "kubeconfig"
    user_kubeconfig.write_text(yaml.safe_dump(config))
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    for name in ("config", "hack"):  # commands are typed in a clone of the repository
        (work / name).symlink_to(REPO / name)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("KUBECONFIG", "JUPYTER"))},
        "KUBECONFIG": str(user_kubeconfig),
        "HOME": str(home),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "KERNEL_NAMESPACE": namespace,
    }
    for block in blocks(page):
        if block.marker != RUN:
            continue
        where = f"{page.relative_to(REPO)}:{block.line}"
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", block.code],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=BLOCK_SECONDS,
            check=False,
        )
        assert done.returncode == 0, f"{where} exited {done.returncode}:\n{done.stderr[-3000:]}"
        if block.expected is not None:
            missing = missing_lines(block.expected, done.stdout)
            assert not missing, f"{where} did not print {missing}; it printed:\n{done.stdout}"


# ------------------------------------------------------------ the product's surface
def _documented_flags(text: str) -> set[str]:
    return {m.group(1) for m in re.finditer(r"`(--[a-z][a-z-]*[a-z])", text)}


def test_every_flag_is_documented_and_every_documented_flag_exists() -> None:
    page = (DOCS / "operate" / "configuration.md").read_text()
    flags = {o.flag for o in OPTIONS}
    negatable = {f"--no-{o.flag[2:]}" for o in OPTIONS}
    documented = _documented_flags(page)
    assert flags - documented == set(), "flags missing from docs/operate/configuration.md"
    documented.discard("--no")  # "`--no-…` to turn off"
    assert documented - flags - negatable == set(), "documented flags the CLI does not have"


def _fields(schema: dict[str, object], prefix: str, depth: int) -> set[str]:
    out: set[str] = set()
    properties = schema.get("properties")
    if not isinstance(properties, dict) or depth == 0:
        return out
    for name, sub in properties.items():
        path = f"{prefix}.{name}"
        out.add(path)
        if isinstance(sub, dict) and not path.endswith((".template", ".containerState")):
            out |= _fields(sub, path, depth - 1)
    return out


def crd_fields() -> set[str]:
    fields: set[str] = set()
    for path in sorted(CRDS.glob("*.yaml")):
        schema = yaml.safe_load(path.read_text())["spec"]["versions"][0]["schema"]
        root = schema["openAPIV3Schema"]["properties"]
        for part in ("spec", "status"):
            fields |= _fields(root[part], part, 2)
    return fields


def test_every_crd_field_is_documented_by_hand_and_nothing_else_is() -> None:
    text = "\n".join(p.read_text() for p in HAND_WRITTEN)
    fields = crd_fields()
    # A field is documented when a page names it with its path, or (for nested ones) by its
    # own name within its parent's documentation (`status.connection` … `keySecret`).
    undocumented = sorted(
        f for f in fields if f not in text and f"`{f.rsplit('.', 1)[1]}`" not in text
    )
    assert not undocumented, f"CRD fields no hand-written page mentions: {undocumented}"
    named = set(re.findall(r"`((?:spec|status)\.[A-Za-z]+(?:\.[A-Za-z]+)?)", text))
    upstream = ("spec.template.", "status.containerState.")  # Kubernetes' own types
    unknown = sorted(
        n for n in named if n not in fields and not n.startswith(upstream) and n[-3:] != ".py"
    )
    assert not unknown, f"documented fields the CRDs do not have: {unknown}"


def test_the_readmes_first_screen_shows_the_two_commands() -> None:
    rows: list[str] = []
    for line in (REPO / "README.md").read_text().splitlines():
        rows += textwrap.wrap(line, 100) or [""]
    first_screen = "\n".join(rows[:24])
    assert "make run" in first_screen
    assert "make test" in first_screen
