"""Reading the documentation as a test does: the shell blocks of a page, which of them a user is
told to run, and the output the page shows after them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
SHELL = re.compile(r"^```(sh|bash|shell|console)\s*$")
FENCE = re.compile(r"^```")
RUN = "<!-- run -->"
NOT_RUN = re.compile(r"^<!-- not run: .+ -->$")
OUTPUT = "<!-- output -->"
# Tokens that differ from run to run: ages, IP addresses, and the page's own "…".
VARIABLE = re.compile(r"^(\d+(\.\d+)?[smhd](\d+[smhd])?|\d+\.\d+\.\d+\.\d+|…)$")


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    marker: str  # the line before the fence: RUN, a NOT_RUN comment, or anything else
    code: str
    expected: str | None  # the output the page shows right after, if marked OUTPUT


def blocks(page: Path) -> list[Block]:
    """The shell blocks of ``page``, in order, with their markers and shown outputs."""
    lines = page.read_text().splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        if not SHELL.match(lines[i]):
            i += 1
            continue
        marker = next((x.strip() for x in reversed(lines[:i]) if x.strip()), "")
        start = i
        i += 1
        body: list[str] = []
        while i < len(lines) and not FENCE.match(lines[i]):
            body.append(lines[i])
            i += 1
        i += 1
        expected = None
        rest = [n for n in range(i, len(lines)) if lines[n].strip()]
        if rest and lines[rest[0]].strip() == OUTPUT:
            j = rest[0] + 2  # past the marker and the opening fence
            shown: list[str] = []
            while j < len(lines) and not FENCE.match(lines[j]):
                shown.append(lines[j])
                j += 1
            expected = "\n".join(shown)
        found.append(Block(page, start + 1, marker, "\n".join(body), expected))
    return found


def pages_in_nav() -> list[Path]:
    """The pages of ``mkdocs.yml``'s nav, in order."""
    nav = yaml.safe_load((REPO / "mkdocs.yml").read_text().replace("!!python/name:", ""))["nav"]
    out: list[Path] = []

    def walk(node: object) -> None:
        if isinstance(node, str):
            out.append(DOCS / node)
        elif isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, dict):
            for value in node.values():
                walk(value)

    walk(nav)
    return out


def line_matches(expected: str, actual: str) -> bool:
    want, got = expected.split(), actual.split()
    return len(want) == len(got) and all(
        w == g or VARIABLE.match(w) for w, g in zip(want, got, strict=True)
    )


def missing_lines(expected: str, actual: str) -> list[str]:
    """The lines of ``expected`` not found, in order, in ``actual`` (variable tokens aside)."""
    lines = actual.splitlines()
    at = 0
    missing = []
    for want in (w for w in expected.splitlines() if w.strip()):
        hit = next((n for n in range(at, len(lines)) if line_matches(want, lines[n])), None)
        if hit is None:
            missing.append(want)
        else:
            at = hit + 1
    return missing
