"""Pod IP addresses on the loopback network: ``127.0.0.2`` … ``127.0.255.254``.

On Linux the whole ``127.0.0.0/8`` is routed to ``lo``: a process can bind any of these
addresses with no set-up (:func:`loopback_usable` checks that at start-up). ``127.0.0.1`` is the
node's own address (``hostIP``); addresses whose last octet is 0 or 255 are skipped.

Contract of :class:`AddressPool` (thread-safe, one lock):

- an address is held by at most one Pod at a time, from :meth:`allocate` or :meth:`reserve`
  until :meth:`release`;
- allocation is next-fit with wrap-around: a released address is handed out again only after
  the rest of the range was, so a new Pod does not get the address of a process that has just
  gone;
- :meth:`reserve` takes a given address (a Pod that already had one before a node restart).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from ipaddress import IPv4Address

FIRST = "127.0.0.2"
LAST = "127.0.255.254"
HOST_IP = "127.0.0.1"


class PoolExhausted(Exception):
    """Every address of the range is held."""


class AddressPool:
    """Hands out loopback addresses to Pods; see the module docstring."""

    def __init__(self, first: str = FIRST, last: str = LAST) -> None:
        self._first = int(IPv4Address(first))
        self._last = int(IPv4Address(last))
        if self._first > self._last:
            raise ValueError(f"empty address range {first} … {last}")
        self._lock = threading.Lock()
        self._held: set[int] = set()  # guarded by _lock
        self._next = self._first  # guarded by _lock; where the next search starts

    def allocate(self) -> str:
        """A free address, now held; raises :class:`PoolExhausted`.

        Addresses on which some process of this machine already listens (another local node's
        kernel, say) are skipped, so two nodes on one machine do not hand out the same one.
        """
        busy = listening_addresses()
        with self._lock:
            candidate = self._next
            for _ in range(self._last - self._first + 1):
                if (
                    self._usable(candidate)
                    and candidate not in self._held
                    and candidate not in busy
                ):
                    self._held.add(candidate)
                    self._next = self._advance(candidate)
                    return str(IPv4Address(candidate))
                candidate = self._advance(candidate)
        raise PoolExhausted(f"all addresses {IPv4Address(self._first)} … in use")

    def reserve(self, address: str) -> bool:
        """Hold ``address`` if it is in the range and free; False otherwise."""
        number = _parse(address)
        with self._lock:
            if number is None or not self.contains(address) or number in self._held:
                return False
            self._held.add(number)
            return True

    def release(self, address: str) -> None:
        """Free ``address``; a no-op for an address not held."""
        number = _parse(address)
        with self._lock:
            if number is not None:
                self._held.discard(number)

    def contains(self, address: str) -> bool:
        """Whether ``address`` belongs to the range this pool hands out."""
        number = _parse(address)
        return number is not None and self._first <= number <= self._last and self._usable(number)

    def held(self) -> int:
        with self._lock:
            return len(self._held)

    def _advance(self, number: int) -> int:
        return self._first if number >= self._last else number + 1

    @staticmethod
    def _usable(number: int) -> bool:
        return number & 0xFF not in (0, 255)


def listening_addresses(table: str = "/proc/net/tcp") -> set[int]:
    """The IPv4 addresses with a listening TCP socket on this machine (from ``/proc``)."""
    found: set[int] = set()
    try:
        with open(table) as lines:
            next(lines, None)
            for line in lines:
                fields = line.split()
                if len(fields) > 3 and fields[3] == "0A":  # TCP_LISTEN
                    hex_address = fields[1].split(":")[0]
                    found.add(int.from_bytes(bytes.fromhex(hex_address), "little"))
    except OSError:
        return found
    return found


def _parse(address: str) -> int | None:
    try:
        return int(IPv4Address(address))
    except ValueError:
        return None


def loopback_usable(address: str = FIRST) -> bool:
    """Whether this machine lets a process listen on ``address`` and connect to it."""
    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            server.bind((address, 0))
            server.listen(1)
            stack.enter_context(socket.create_connection(server.getsockname(), timeout=2.0))
        except OSError:
            return False
    return True
