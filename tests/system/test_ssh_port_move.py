"""Moving sshd to another port on a host that already has the firewall (its own fresh host).

The ssh role opens the new port in the running ruleset before sshd moves, the firewall role then
writes it into the ruleset (dropping 22), and the fail2ban jail follows: no moment in which the
operator's next login would be dropped.
"""

from __future__ import annotations

import dataclasses
import subprocess
import time

import pytest

from berth.vps import Host, ssh_argv
from tests.system.ansible_run import run_playbook
from tests.system.conftest import make_inventory
from tests.system.test_hardening import tcp_outcome
from tests.vps.plugin import VpsFactory

pytestmark = pytest.mark.system

NEW_PORT = 2222


def sudo_on_port(host: Host, port: int, command: str) -> str:
    argv = ssh_argv(dataclasses.replace(host, user="deploy"), [f"sudo {command}"])
    argv[1:1] = ["-p", str(port)]
    result = subprocess.run(
        argv, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, check=False
    )
    assert result.returncode == 0, f"{command!r} on port {port}: {result.stderr}"
    return result.stdout


def test_changing_ssh_port_on_a_firewalled_host_keeps_access(
    vps_factory: VpsFactory, tmp_path_factory: pytest.TempPathFactory
) -> None:
    host = vps_factory.create("sshport")
    try:
        inventory = make_inventory(tmp_path_factory.mktemp("inventory"), [host])
        started = time.monotonic()
        first = run_playbook(inventory, "playbooks/harden.yml")
        assert first.returncode == 0, first.output[-4000:]
        assert "tcp dport 22 accept" in sudo_on_port(host, 22, "nft list chain inet berth input")

        moved = run_playbook(inventory, "playbooks/harden.yml", "-e", f"ssh_port={NEW_PORT}")
        assert moved.returncode == 0, moved.output[-6000:]
        assert "Open the new SSH port in the firewall before sshd moves" in moved.output

        assert f"port {NEW_PORT}" in sudo_on_port(host, NEW_PORT, "sshd -T").splitlines()
        chain = sudo_on_port(host, NEW_PORT, "nft list chain inet berth input")
        assert f'tcp dport {NEW_PORT} accept comment "ssh"' in chain
        assert "tcp dport 22 " not in chain and "ssh port move" not in chain, chain
        jail_local = sudo_on_port(host, NEW_PORT, "cat /etc/fail2ban/jail.local")
        assert f"port = {NEW_PORT}" in jail_local, jail_local
        status = sudo_on_port(host, NEW_PORT, "fail2ban-client status sshd")
        assert "Status for the jail: sshd" in status
        assert tcp_outcome(host.address, 22) == "timeout"
        assert tcp_outcome(host.address, NEW_PORT) == "open"

        again = run_playbook(
            inventory, "playbooks/harden.yml", "-e", f"ssh_port={NEW_PORT} ansible_port={NEW_PORT}"
        )
        assert again.returncode == 0, again.output[-4000:]
        assert again.counts(host.name)["changed"] == 0, again.output[-6000:]
        print(f"ssh port move: {time.monotonic() - started:.0f} s for three harden.yml runs")
    finally:
        vps_factory.destroy(host)
