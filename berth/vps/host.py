"""Create and destroy one test host: a systemd-nspawn container on its own veth link.

Layout of host N (index 1..254): the guest is 10.231.N.2/24 on its host0, the control node
is 10.231.N.1/24 on ve-berth-N. Every guest also has priv0 at 10.232.0.N/24 on a private network
the hosts share: a bridge inside its own network namespace (berth-vps-lan), like a provider's
private network between VPSes. There is no routing, NAT or firewall change on the control
node; the guest reaches the apt proxy through two socat bridges and a unix socket:
guest 127.0.0.1:3142 -> socket file -> control node 127.0.0.1:3142.
"""

from __future__ import annotations

import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from berth.vps import guest, network, preflight, proc
from berth.vps import state as st
from berth.vps.base import ensure_base
from berth.vps.config import LAN_GUEST_IF, PROXY_HOST, PROXY_PORT, Config, lan_address
from berth.vps.errors import VpsError
from berth.vps.fsutil import locked, remove_tree
from berth.vps.keys import ensure_key
from berth.vps.proxy import ensure_proxy
from berth.vps.state import HostState

log = logging.getLogger(__name__)

_ANSI_RE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

# Indexes `up` picks from when none is given; 1 is left for the demo host.
AUTO_INDEXES = range(2, 255)
BOOT_TIMEOUT = 90.0

NSPAWN = "nspawn"
INIT = "init"
PROXY_BRIDGE = "proxy-bridge"
GUEST_BRIDGE = "guest-bridge"
# Stop order and grace period: bridges, then nspawn (SIGTERM = clean guest poweroff), then
# the guest's init, which outlives nspawn only if nspawn was SIGKILLed.
_STOP_ORDER = ((GUEST_BRIDGE, 5.0), (PROXY_BRIDGE, 5.0), (NSPAWN, 30.0), (INIT, 1.0))


@dataclass(frozen=True)
class Host:
    """How to reach a running test host."""

    name: str
    index: int
    address: str
    key_path: Path
    user: str = "root"

    @property
    def private_address(self) -> str:
        """The host's address on the private network all test hosts share."""
        return lan_address(self.index)


@dataclass(frozen=True)
class HostStatus:
    name: str
    index: int
    address: str
    state: str  # "alive", "dead" or "creating"


def _host(config: Config, record: HostState) -> Host:
    return Host(record.name, record.index, record.address, config.key_path)


def _nspawn_argv(record: HostState) -> list[str]:
    return [
        "systemd-nspawn",
        f"--directory={record.root}",
        f"--machine={record.machine}",
        f"--hostname={record.name}",
        "--boot",
        # No systemd on the control node: no machined to register with, no scope to create.
        "--register=no",
        "--keep-unit",
        "--network-veth",
        f"--network-veth-extra={record.lan_veth}:{LAN_GUEST_IF}",
        "--console=read-only",
    ]


def _proxy_bridge_argv(sock: Path) -> list[str]:
    return [
        "socat",
        f"UNIX-LISTEN:{sock},fork,unlink-early,mode=600",
        f"TCP:{PROXY_HOST}:{PROXY_PORT}",
    ]


def _guest_bridge_argv(record: HostState, sock: Path) -> list[str]:
    return [
        "ip",
        "netns",
        "exec",
        record.netns,
        "socat",
        f"TCP-LISTEN:{PROXY_PORT},bind={PROXY_HOST},fork,reuseaddr",
        f"UNIX-CONNECT:{sock}",
    ]


def _log_tail(config: Config, name: str) -> str:
    path = st.log_path(config, name)
    if not path.is_file():
        return ""
    return proc.tail(_ANSI_RE.sub("", path.read_text(errors="replace")))


def _container_leader(nspawn: proc.ProcRef) -> int:
    """PID of the container's init: nspawn's child in another network namespace, once it
    has become the guest's own program."""
    own_netns = os.readlink("/proc/self/ns/net")
    found: list[int] = []

    def leader_found() -> bool:
        for pid in proc.children(nspawn.pid):
            try:
                other_netns = os.readlink(f"/proc/{pid}/ns/net") != own_netns
            except OSError:
                continue
            ref = proc.identify(pid)
            # Until it execs the guest's init, the child still runs nspawn's own code.
            if other_netns and ref is not None and ref.comm != "systemd-nspawn":
                found.append(pid)
                return True
        return False

    if not network.wait_for(leader_found, 10):
        raise VpsError("systemd-nspawn started no container process")
    return found[0]


def _start(config: Config, record: HostState, tarball: Path, boot_timeout: float) -> None:
    """Everything after the record exists; each step is recorded before the next starts."""
    guest.extract(tarball, record.root)
    guest.configure(
        record.root,
        name=record.name,
        address=record.address,
        gateway=record.gateway,
        lan_address=record.lan_address,
        key=config.key_path,
    )
    log_file = st.log_path(config, record.name)
    log_file.write_text("")
    nspawn = proc.spawn(_nspawn_argv(record), log_file, expect_comm="systemd-nspawn")
    record.processes[NSPAWN] = nspawn
    st.save(config, record)

    def veths_ready() -> bool:
        links = (record.veth, record.lan_veth)
        return all(network.link_exists(link) for link in links) or not proc.is_running(nspawn)

    network.wait_for(veths_ready, 15)
    for link in (record.veth, record.lan_veth):
        if not network.link_exists(link):
            raise VpsError(f"systemd-nspawn did not create {link}")
    network.configure_gateway(record.veth, record.gateway)
    network.ensure_lan()
    network.attach_to_lan(record.lan_veth)
    init = proc.identify(_container_leader(nspawn))
    if init is None:
        raise VpsError("the container's init exited at once")
    record.processes[INIT] = init
    st.save(config, record)
    network.attach_netns(record.netns, init.pid)

    sock = st.socket_path(config, record.name)
    record.processes[PROXY_BRIDGE] = proc.spawn(
        _proxy_bridge_argv(sock), log_file, expect_comm="socat"
    )
    st.save(config, record)
    network.wait_for(sock.exists, 5)
    record.processes[GUEST_BRIDGE] = proc.spawn(
        _guest_bridge_argv(record, sock), log_file, expect_comm="socat"
    )
    st.save(config, record)

    def booted() -> bool:
        return network.ssh_banner(record.address) or not proc.is_running(nspawn)

    network.wait_for(booted, boot_timeout, interval=0.25)
    if not proc.is_running(nspawn):
        raise VpsError("the container exited while booting")
    if not network.ssh_banner(record.address):
        raise VpsError(f"sshd did not answer on {record.address}:22 within {boot_timeout:.0f} s")
    dead = [role for role, ref in record.processes.items() if not proc.is_running(ref)]
    if dead:
        raise VpsError(f"exited while starting: {', '.join(dead)}")
    record.phase = st.UP
    st.save(config, record)


def _reserve(config: Config, name: str, index: int | None, candidates: range) -> HostState:
    """Write the host's record under the lock, so concurrent `up`s never share a name or index."""
    config.host_state_dir.mkdir(parents=True, exist_ok=True)
    with locked(config.lock_path):
        root = config.host_root(name)
        if st.load(config, name) is not None or root.exists() or network.netns_exists(name):
            raise VpsError(f"host {name} already exists (or left files behind): run 'down {name}'")
        live = network.used_indexes()
        if index is None:
            index = st.pick_index(config, live, candidates)
        else:
            st.check_index(index)
            owners = [s.name for s in st.load_all(config) if s.index == index]
            if owners or index in live:
                owner = owners[0] if owners else "an address on this machine"
                raise VpsError(f"index {index} is in use by {owner}")
        record = HostState(name=name, index=index, root=root)
        st.save(config, record)
        return record


def up(
    config: Config,
    name: str,
    index: int | None = None,
    *,
    candidates: range = AUTO_INDEXES,
    boot_timeout: float = BOOT_TIMEOUT,
) -> Host:
    """Create host name and wait for its sshd; return the running host if it is already up.

    index picks the subnet 10.231.N.0/24; without it the lowest free index in candidates
    is used. A failed start removes everything it made and raises VpsError.
    """
    st.check_name(name)
    preflight.require_all()
    existing = st.load(config, name)
    if existing is not None:
        if existing.alive():
            log.info("host %s is already up at %s", name, existing.address)
            ensure_proxy(config)  # restarts the shared proxy if it died meanwhile
            return _host(config, existing)
        raise VpsError(f"host {name} exists but is not running: remove it with 'down {name}'")
    tarball = ensure_base(config)
    ensure_key(config)
    ensure_proxy(config)
    record = _reserve(config, name, index, candidates)
    started = time.monotonic()
    log.info("starting host %s at %s", name, record.address)
    try:
        _start(config, record, tarball, boot_timeout)
    except BaseException as exc:
        detail = _log_tail(config, name)
        down(config, name)
        if isinstance(exc, VpsError):
            raise VpsError(f"host {name}: {exc}\n{detail}".rstrip()) from exc
        raise
    log.info("host %s up at %s in %.1f s", name, record.address, time.monotonic() - started)
    return _host(config, record)


def _stray_processes(root: Path, sock: Path) -> list[proc.ProcRef]:
    """Our daemons for this host that are not (or no longer) in its record."""
    marks = (
        ("systemd-nspawn", [f"--directory={root}"]),
        ("socat", [_proxy_bridge_argv(sock)[1]]),
        ("socat", [f"UNIX-CONNECT:{sock}"]),
    )
    found = []
    for comm, args in marks:
        for pid in proc.find(args):
            ref = proc.identify(pid)
            if ref is not None and ref.comm == comm:
                found.append(ref)
    return found


def down(config: Config, name: str) -> bool:
    """Remove host name and everything made for it; True if anything was there. Idempotent."""
    st.check_name(name)
    record = st.load(config, name)
    root = record.root if record is not None else config.host_root(name)
    sock = st.socket_path(config, name)
    existed = record is not None or root.exists() or network.netns_exists(name)
    recorded = record.processes if record is not None else {}
    for role, grace in _STOP_ORDER:
        if role in recorded:
            proc.stop(recorded[role], timeout=grace)
    strays = _stray_processes(root, sock)
    strays += proc.namespace_inits_in_netns(network.netns_path(name))
    for ref in strays:
        existed = True
        proc.stop(ref, timeout=30 if ref.comm == "systemd-nspawn" else 1)
    network.delete_netns(name)
    if record is not None:
        network.delete_link(record.veth)
        network.delete_link(record.lan_veth)  # still here if nspawn died before the move
        network.delete_lan_link(record.lan_veth)
    sock.unlink(missing_ok=True)
    st.log_path(config, name).unlink(missing_ok=True)
    remove_tree(root)
    # systemd-nspawn's lock file beside the directory; left behind if nspawn was killed.
    root.with_name(f".#{root.name}.lck").unlink(missing_ok=True)
    st.forget(config, name)
    return existed


def get(config: Config, name: str) -> Host:
    record = st.load(config, name)
    if record is None:
        raise VpsError(f"no host named {name}")
    return _host(config, record)


def status(config: Config) -> list[HostStatus]:
    """Every recorded host, and host directories left without a record."""
    rows = []
    for record in st.load_all(config):
        if record.phase == st.CREATING:
            state = "creating" if any(map(proc.is_running, record.processes.values())) else "dead"
        else:
            state = "alive" if record.alive() else "dead"
        rows.append(HostStatus(record.name, record.index, record.address, state))
    known = {row.name for row in rows}
    if config.hosts_dir.is_dir():
        for leftover in sorted(config.hosts_dir.iterdir()):
            if leftover.is_dir() and leftover.name not in known:
                rows.append(HostStatus(leftover.name, 0, "-", "dead"))
    return rows


def down_all(config: Config) -> list[str]:
    """Remove every host, recorded or left over; return their names."""
    names = [row.name for row in status(config)]
    for name in names:
        down(config, name)
    network.delete_lan()
    return names


def ssh_argv(host: Host, command: list[str] | None = None) -> list[str]:
    """An ssh command line that logs in to host as root with the tool's key."""
    return [
        "ssh",
        "-i",
        str(host.key_path),
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "LogLevel=ERROR",
        "-o",
        "BatchMode=yes",
        "-o",
        "ConnectTimeout=10",
        f"{host.user}@{host.address}",
        *(command or []),
    ]
