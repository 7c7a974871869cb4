"""Free loopback TCP ports for the harness, the tests and the benchmarks (one helper for all).

A port is free when the call returns; another process may take it before the caller binds it,
so callers that can should let the program bind port 0 and report the port instead.
"""

from __future__ import annotations

import contextlib
import socket


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct ports on ``host`` that were free a moment ago (held open together,
    so they differ)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind((host, 0))
        return [int(sock.getsockname()[1]) for sock in socks]


def free_port(host: str = "127.0.0.1") -> int:
    """One port on ``host`` that was free a moment ago."""
    return free_ports(1, host)[0]
