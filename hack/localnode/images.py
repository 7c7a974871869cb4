"""Which images the local node can "pull". Pure.

The node runs every kernel with the local interpreter and never pulls anything, but a kubelet
that cannot pull an image reports it, and users (and the controller's ``ImagePullError``)
must see that. The one image the node cannot pull is one whose registry cannot exist: a host
under the ``.invalid`` top-level domain, which RFC 2606 reserves so that it never resolves,
on this machine or anywhere (e.g. ``registry.invalid/kernel-py:1``). The message is the one
containerd gives for a host that does not resolve.
"""

from __future__ import annotations

UNRESOLVABLE_TLD = ".invalid"


def registry_host(image: str) -> str:
    """The registry host of an image reference ("" for Docker Hub's short names)."""
    first, _, rest = image.partition("/")
    if not rest:
        return ""
    host = first.split(":", 1)[0]  # a port, as in localhost:5000/x
    return host if ("." in host or host == "localhost") else ""


def pull_failure(image: str) -> str | None:
    """Why ``image`` cannot be pulled (the kubelet's waiting message), or None."""
    host = registry_host(image)
    if not host.endswith(UNRESOLVABLE_TLD):
        return None
    return (
        f'failed to pull and unpack image "{image}": failed to resolve reference "{image}": '
        f"failed to do request: dial tcp: lookup {host}: no such host"
    )
