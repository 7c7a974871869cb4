"""Put Mermaid next to the docs, so the site draws its diagrams without the network.

MkDocs Material loads Mermaid from unpkg.com unless the page already has it; an air-gapped
reader (or the headless browser of the docs test) would see the diagrams as code. This fetches
the pinned release from the npm registry once (cached in ``~/.cache/kernel-controller/docs``),
checks its published sha512 integrity, and writes its ``dist/mermaid.min.js`` to
``docs/assets/javascripts/`` (git-ignored), which ``mkdocs.yml`` lists in ``extra_javascript``.

Without the registry the site still builds: the browser then falls back to unpkg.com. Exit 0
either way (one line says which); 1 only when the download does not match its checksum.
"""

from __future__ import annotations

import base64
import hashlib
import io
import sys
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

VERSION = "11.17.2"  # the major version MkDocs Material asks unpkg.com for
TARBALL = f"https://registry.npmjs.org/mermaid/-/mermaid-{VERSION}.tgz"
# The registry's "dist.integrity" for that version.
INTEGRITY = (
    "sha512-"
    "V6K3C8EBdEsPFZXSKMJe6ppQOENxuHARr9GvHX4hh47lAbhMRD9qf4oEK7LoaRQxULMa80/qt5gHO73aCleBBg=="
)
MEMBER = "package/dist/mermaid.min.js"
REPO = Path(__file__).resolve().parents[2]
TARGET = REPO / "docs" / "assets" / "javascripts" / "mermaid.min.js"
CACHE = Path.home() / ".cache" / "kernel-controller" / "docs" / f"mermaid-{VERSION}.tgz"
TIMEOUT_SECONDS = 120


def matches(data: bytes, integrity: str = INTEGRITY) -> bool:
    """Whether ``data`` has the npm ``integrity`` (``sha512-<base64 digest>``)."""
    algorithm, _, digest = integrity.partition("-")
    return base64.b64encode(hashlib.new(algorithm, data).digest()).decode() == digest


def tarball() -> bytes | None:
    """The pinned tarball, from the cache or the registry; None when it cannot be had."""
    if CACHE.is_file():
        cached = CACHE.read_bytes()
        if matches(cached):
            return cached
    try:
        with urllib.request.urlopen(TARBALL, timeout=TIMEOUT_SECONDS) as resp:
            data: bytes = resp.read()
    except (urllib.error.URLError, OSError) as err:
        print(f"mermaid: not fetched ({err}); the site will load it from unpkg.com")
        return None
    if not matches(data):
        raise SystemExit(f"mermaid: {TARBALL} does not match its published sha512")
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    CACHE.write_bytes(data)
    return data


def main() -> int:
    stamp = TARGET.parent / ".mermaid-version"  # a dotfile: MkDocs leaves it out of the site
    if TARGET.is_file() and stamp.is_file() and stamp.read_text().strip() == VERSION:
        return 0
    data = tarball()
    if data is None:
        return 0
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        member = archive.extractfile(MEMBER)
        if member is None:
            raise SystemExit(f"mermaid: {MEMBER} missing from {TARBALL}")
        script = member.read()
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    TARGET.write_bytes(script)
    stamp.write_text(VERSION + "\n")
    print(f"mermaid: {VERSION} in {TARGET.relative_to(REPO)} ({len(script) // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
