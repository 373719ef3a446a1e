"""A TCP connect scan of one host, for the scanner tests.

Each port gets one connection attempt with its own timeout: "open" (the handshake completed),
"refused" (a reset came back), "filtered" (nothing came back in time, or the network said the
host is unreachable), or "scanner error ..." for anything that is the scanner's own failure.

A fixed pool of workers takes the ports one after another, so the event loop only ever holds
`concurrency` attempts and each timeout starts when its own attempt starts. (One task per port,
all created up front, made the loop's first turn alone take longer than the timeout on a busy
machine: every attempt of the first batch, the one with SSH and the web ports, timed out.)
Addresses are given numerically with an optional IPv6 zone ("fe80::1%veth0"); the zone is turned
into a scope id once, so no attempt goes through getaddrinfo and its thread pool.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import Iterable
from dataclasses import dataclass

OPEN = "open"
REFUSED = "refused"
FILTERED = "filtered"
# Errors that mean the packets went nowhere: as good as dropped.
UNREACHABLE = {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ETIMEDOUT}


@dataclass(frozen=True)
class Target:
    """A numeric address to scan, with its IPv6 scope id (0 for IPv4 and global addresses)."""

    address: str
    scope_id: int = 0

    @classmethod
    def parse(cls, text: str) -> Target:
        address, _, zone = text.partition("%")
        if zone:
            try:
                return cls(address, socket.if_nametoindex(zone))
            except OSError as exc:
                raise ValueError(f"no network interface {zone!r} for the zone of {text}") from exc
        return cls(address)

    def __str__(self) -> str:
        return f"{self.address}%{self.scope_id}" if self.scope_id else self.address

    @property
    def family(self) -> socket.AddressFamily:
        return socket.AF_INET6 if ":" in self.address else socket.AF_INET

    def sockaddr(self, port: int) -> tuple[str, int] | tuple[str, int, int, int]:
        if self.family == socket.AF_INET6:
            return (self.address, port, 0, self.scope_id)
        return (self.address, port)


async def probe(target: Target, port: int, timeout: float) -> str:
    """One connection attempt to one port; never raises for what the network answers."""
    loop = asyncio.get_running_loop()
    with socket.socket(target.family, socket.SOCK_STREAM) as sock:
        sock.setblocking(False)
        try:
            async with asyncio.timeout(timeout):
                await loop.sock_connect(sock, target.sockaddr(port))
        except ConnectionRefusedError:
            return REFUSED
        except TimeoutError:
            return FILTERED
        except OSError as exc:
            if exc.errno in UNREACHABLE:
                return FILTERED
            return f"scanner error {errno.errorcode.get(exc.errno or 0, exc.errno)}"
    return OPEN


async def scan(
    target: Target, ports: Iterable[int], *, concurrency: int, timeout: float
) -> dict[int, str]:
    """Every port's state; at most `concurrency` attempts are in flight at a time."""
    pending = iter(ports)
    states: dict[int, str] = {}

    async def worker() -> None:
        # The workers share one iterator: each takes the next port when its attempt is done.
        for port in pending:
            states[port] = await probe(target, port, timeout)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return states


def connect(target: Target, port: int, *, timeout: float) -> None:
    """One blocking connection, closed at once; raises OSError when it cannot be made."""
    with socket.socket(target.family, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(target.sockaddr(port))


def run(
    target: Target, ports: Iterable[int], *, concurrency: int, timeout: float
) -> dict[int, str]:
    return asyncio.run(scan(target, ports, concurrency=concurrency, timeout=timeout))
