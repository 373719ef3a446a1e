"""Real hosts: two at once, SSH as root, apt through the proxy, host firewall untouched."""

import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from berth.vps import Host, proc
from berth.vps import state as st
from berth.vps.config import LAN_NETNS, LAN_PREFIX
from tests.vps.plugin import InventoryWriter, VpsFactory

_SSH_OPTS = [
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    "BatchMode=yes",
    "-o",
    "LogLevel=ERROR",
]


def _nft_ruleset() -> str:
    return subprocess.run(
        ["nft", "list", "ruleset"], capture_output=True, text=True, check=True
    ).stdout


def _ip_forward() -> str:
    return Path("/proc/sys/net/ipv4/ip_forward").read_text()


def _netns_names() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


@pytest.mark.system
def test_two_hosts_ssh_apt_and_clean_teardown(
    vps_factory: VpsFactory, vps_inventory: InventoryWriter
) -> None:
    ruleset_before, forward_before = _nft_ruleset(), _ip_forward()
    with ThreadPoolExecutor(max_workers=2) as pool:
        hosts: list[Host] = list(pool.map(vps_factory.create, ["sys-a", "sys-b"]))
    records = [st.load(vps_factory.config, h.name) for h in hosts]

    assert len({h.address for h in hosts}) == 2
    assert all(10 <= h.index <= 99 for h in hosts)
    for h in hosts:
        done = subprocess.run(
            ["ssh", "-i", str(h.key_path), *_SSH_OPTS, f"root@{h.address}", "true"], check=False
        )
        assert done.returncode == 0, f"ssh root@{h.address} failed"
        assert vps_factory.ssh(h, "hostname").stdout.strip() == h.name
    vps_factory.ssh(
        hosts[0], "apt-get update -q && apt-get install -y -q --no-install-recommends tree"
    )
    assert vps_factory.ssh(hosts[0], "tree --version").returncode == 0
    inventory = vps_inventory(hosts, {"app": [h.name for h in hosts]})
    assert hosts[1].address in inventory.read_text()
    assert _nft_ruleset() == ruleset_before
    assert _ip_forward() == forward_before
    # The hosts reach each other on their private network; the control node has no address there.
    ping = vps_factory.ssh(hosts[0], f"ping -c 1 -W 2 {hosts[1].private_address}")
    assert ping.returncode == 0, ping.stdout + ping.stderr
    own = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True).stdout
    assert hosts[1].private_address not in own
    assert LAN_PREFIX not in subprocess.run(["ip", "route"], capture_output=True, text=True).stdout

    for h in hosts:
        vps_factory.destroy(h)

    for h, record in zip(hosts, records, strict=True):
        assert record is not None
        assert not any(proc.is_running(ref) for ref in record.processes.values())
        assert h.name not in _netns_names()
        assert not Path("/sys/class/net", record.veth).exists()
        lan_links = subprocess.run(
            ["ip", "-n", LAN_NETNS, "-o", "link"], capture_output=True, text=True
        ).stdout
        assert record.lan_veth not in lan_links
        assert not record.root.exists()
        assert st.load(vps_factory.config, h.name) is None
        assert not st.socket_path(vps_factory.config, h.name).exists()
    assert not set(vps_factory.names) & {h.name for h in hosts}
    assert _nft_ruleset() == ruleset_before
