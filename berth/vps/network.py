"""The control node's side of a host's network: veth address, named netns, reachability."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable
from pathlib import Path

from berth.vps.config import LAN_BRIDGE, LAN_NETNS, SUBNET_PREFIX
from berth.vps.proc import run

_NETNS_DIR = Path("/run/netns")
_ADDR_RE = re.compile(rf"\binet {re.escape(SUBNET_PREFIX)}\.(\d+)\.\d+/")


def used_indexes() -> set[int]:
    """Host indexes whose 10.231.N.0/24 subnet already has an address on this machine."""
    out = run(["ip", "-o", "-4", "addr", "show"], check=False).stdout
    return {int(match.group(1)) for match in _ADDR_RE.finditer(out)}


def link_exists(name: str) -> bool:
    return Path("/sys/class/net", name).exists()


def wait_for(condition: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
    return True


def configure_gateway(veth: str, gateway: str) -> None:
    """Give the control node's end of the veth its address; no routing or NAT is set up."""
    run(["ip", "addr", "replace", f"{gateway}/24", "dev", veth])
    run(["ip", "link", "set", veth, "up"])


def ensure_lan() -> None:
    """The private network's namespace and bridge; made once, shared by every host."""
    if not netns_exists(LAN_NETNS):
        run(["ip", "netns", "add", LAN_NETNS], check=False)  # a concurrent `up` may win the race
    if run(["ip", "-n", LAN_NETNS, "link", "show", LAN_BRIDGE], check=False).returncode != 0:
        run(["ip", "-n", LAN_NETNS, "link", "add", LAN_BRIDGE, "type", "bridge"], check=False)
    run(["ip", "-n", LAN_NETNS, "link", "set", LAN_BRIDGE, "up"])


def attach_to_lan(veth: str) -> None:
    """Move the control node's end of a guest's extra veth onto the private network's bridge."""
    run(["ip", "link", "set", veth, "netns", LAN_NETNS])
    run(["ip", "-n", LAN_NETNS, "link", "set", veth, "master", LAN_BRIDGE, "up"])


def delete_lan_link(veth: str) -> None:
    """Remove a host's end of its private-network link (it also goes with the guest's netns)."""
    if netns_exists(LAN_NETNS):
        run(["ip", "-n", LAN_NETNS, "link", "del", veth], check=False)


def delete_lan() -> None:
    """Remove the private network (its bridge goes with the namespace)."""
    delete_netns(LAN_NETNS)


def delete_link(name: str) -> None:
    if link_exists(name):
        run(["ip", "link", "del", name], check=False)


def netns_path(name: str) -> Path:
    return _NETNS_DIR / name


def netns_exists(name: str) -> bool:
    return netns_path(name).exists()


def attach_netns(name: str, pid: int) -> None:
    """Name the network namespace of pid, for `ip netns exec NAME` and for cleanup."""
    run(["ip", "netns", "attach", name, str(pid)])


def delete_netns(name: str) -> None:
    if netns_exists(name):
        run(["ip", "netns", "del", name], check=False)


def ssh_banner(address: str, port: int = 22, timeout: float = 1.0) -> bool:
    """True once an SSH server answers on address:port with its version banner."""
    try:
        with socket.create_connection((address, port), timeout=timeout) as conn:
            conn.settimeout(timeout)
            return conn.recv(16).startswith(b"SSH-")
    except OSError:
        return False


def port_open(address: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False
