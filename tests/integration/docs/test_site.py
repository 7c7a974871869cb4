"""`make docs` builds the site with ``mkdocs build --strict`` (a broken link or a page left out
of the nav fails it); the built site opens in a headless browser, and Use, Operate and Develop
are reachable from its home page (screenshots of each are kept in the test's directory); its
Mermaid diagrams are drawn with no network (``hack/docs/fetch_mermaid.py``)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
SECTIONS = ("use", "operate", "develop")
BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")
# Every request that would leave the machine goes to a port nothing listens on.
OFFLINE = ("--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=<-loopback>")


def browse(url: str, profile: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(BROWSER), "--headless", "--no-sandbox", "--disable-gpu",
            "--disable-dev-shm-usage", "--disable-background-networking",
            "--disable-component-update", "--no-first-run", f"--user-data-dir={profile}",
            *flags, url,
        ],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def site() -> Path:
    done = subprocess.run(
        ["make", "--no-print-directory", "docs"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return REPO / "site"


def test_make_docs_builds_every_page(site: Path) -> None:
    for section in SECTIONS:
        assert (site / section / "index.html").is_file()
    reference = (site / "use" / "api-reference" / "index.html").read_text()
    assert "spec.poolRef" in reference  # generated from the CRD
    assert "status.readyReplicas" in reference


def test_the_home_page_links_to_use_operate_and_develop(site: Path) -> None:
    home = (site / "index.html").read_text()
    links = set(re.findall(r'href="([^"#]+)"', home))
    for section in SECTIONS:
        assert f"{section}/" in links, f"no link to {section}/ from the home page"


@pytest.mark.skipif(BROWSER is None, reason="chromium is not installed (make docs-tools)")
@pytest.mark.parametrize("page", ["", *SECTIONS])
def test_the_pages_open_in_a_headless_browser(site: Path, page: str, tmp_path: Path) -> None:
    assert BROWSER is not None
    shot = tmp_path / f"{page or 'home'}.png"
    url = (site / page / "index.html").as_uri()
    done = browse(url, tmp_path / "profile", "--window-size=1280,900", f"--screenshot={shot}")
    assert shot.is_file(), done.stderr[-2000:]
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank one
    dom = browse(url, tmp_path / "profile2", "--dump-dom").stdout
    title = {"": "Jupyter Kernel Controller", "use": "Use", "operate": "Operate"}.get(
        page, "Develop"
    )
    assert "<h1" in dom and title in dom


@pytest.mark.skipif(BROWSER is None, reason="chromium is not installed (make docs-tools)")
def test_the_diagrams_are_drawn_without_the_network(site: Path, tmp_path: Path) -> None:
    assert (site / "assets" / "javascripts" / "mermaid.min.js").stat().st_size > 1_000_000
    url = (site / "index.html").as_uri()
    assert "flowchart LR" in (site / "index.html").read_text()  # the diagram, as text
    dom = browse(url, tmp_path / "profile", *OFFLINE, "--virtual-time-budget=15000", "--dump-dom")
    # Drawn, Material replaces the diagram's text by a <div class="mermaid"> holding the SVG
    # (in a closed shadow root); undrawn (no Mermaid), the text stays in a <pre>.
    assert '<div class="mermaid">' in dom.stdout, dom.stderr[-2000:]
    assert "flowchart LR" not in dom.stdout
