"""Firewall, fail2ban, unattended upgrades and journald on the host provisioned by site.yml.

Traffic goes only to the test host. The ban test comes last in this file: it bans the control
node's address for a few seconds (a runtime bantime, not the configured one) and waits until SSH
answers again, so later system tests on the shared host still connect.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import subprocess
import time

import httpx
import pytest

from berth.vps import Host
from tests.system.ansible_run import run_playbook
from tests.system.conftest import Provisioned
from tests.system.test_site import deploy_sudo, ssh_as

pytestmark = pytest.mark.system

CONNECT_TIMEOUT = 3.0
# Addresses of the throwaway hosts' network; inventory/local/group_vars ignores it in fail2ban.
TEST_NETWORK = "10.231.0.0/16"
# Seconds the control node stays banned in the ban test; the configured bantime is restored after.
TEST_BANTIME = 20
# Seconds fail2ban may take to ban after the first failure, or to lift a ban (busy machine).
BAN_WAIT = 90


def tcp_outcome(address: str, port: int) -> str:
    """'open', 'refused' (an RST: the firewall let the SYN through) or 'timeout' (dropped)."""
    try:
        with socket.create_connection((address, port), timeout=CONNECT_TIMEOUT):
            return "open"
    except ConnectionRefusedError:
        return "refused"
    except TimeoutError:
        return "timeout"


def control_node_address(host: Host) -> str:
    """The control node's end of the host's veth link: 10.231.N.1 for a host at 10.231.N.2."""
    return host.address.rsplit(".", 1)[0] + ".1"


def failed_login(host: Host) -> subprocess.CompletedProcess[str]:
    """One SSH login as a user that does not exist, to the test host only."""
    argv = [
        "ssh",
        "-o", "BatchMode=yes",
        "-o", "ConnectTimeout=5",
        "-o", "IdentitiesOnly=yes",
        "-o", "StrictHostKeyChecking=no",
        "-o", "UserKnownHostsFile=/dev/null",
        "-o", "LogLevel=ERROR",
        "-i", str(host.key_path),
        f"berth-no-such-user@{host.address}",
        "true",
    ]  # fmt: skip
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL, check=False
    )


def jail_state(host: Host) -> str:
    """The sshd jail's status and the end of fail2ban's log, for failure messages."""
    return deploy_sudo(
        host, "sh -c 'fail2ban-client status sshd; tail -n 20 /var/log/fail2ban.log'"
    )


def test_only_ssh_and_web_ports_pass_the_firewall(provisioned: Provisioned) -> None:
    host = provisioned.host
    # A listener on all addresses that the firewall must hide; it exits by itself after 30 s.
    deploy_sudo(
        host,
        "sh -c 'timeout 30 python3 -m http.server 8080 --bind 0.0.0.0 "
        ">/dev/null 2>&1 </dev/null &'",
    )
    deadline = time.monotonic() + 10
    while ":8080 " not in deploy_sudo(host, "ss -Hltn"):
        assert time.monotonic() < deadline, "the 8080 listener did not start in the guest"
        time.sleep(0.3)

    assert tcp_outcome(host.address, 8080) == "timeout"
    assert tcp_outcome(host.address, 22) == "open"
    assert tcp_outcome(host.address, 80) == "open"
    # Accepted by the firewall: answered at once (open, or refused while nothing listens there).
    assert tcp_outcome(host.address, 443) in {"open", "refused"}


def test_ruleset_drops_by_default_and_accepts_ssh_first(provisioned: Provisioned) -> None:
    chain = deploy_sudo(provisioned.host, "nft list chain inet berth input")
    rules = [line.strip() for line in chain.splitlines() if line.strip()]
    assert "type filter hook input priority filter; policy drop;" in rules
    assert rules.index('tcp dport 22 accept comment "ssh"') < rules.index(
        "ct state established,related accept"
    )
    assert "tcp dport { 80, 443 } accept" in rules
    forward = deploy_sudo(provisioned.host, "nft list chain inet berth forward")
    assert "policy drop;" in forward


def test_fail2ban_watches_sshd_through_the_journal(provisioned: Provisioned) -> None:
    status = deploy_sudo(provisioned.host, "fail2ban-client status sshd")
    assert "Status for the jail: sshd" in status
    # Only the systemd backend reports journal matches (file backends list log files instead).
    assert "Journal matches:" in status and "_COMM=sshd" in status
    assert deploy_sudo(provisioned.host, "fail2ban-client get sshd actions").count("nftables") == 1


def test_unattended_security_upgrades_are_scheduled(provisioned: Provisioned) -> None:
    dump = deploy_sudo(provisioned.host, "apt-config dump")
    assert 'APT::Periodic::Update-Package-Lists "1";' in dump
    assert 'APT::Periodic::Unattended-Upgrade "1";' in dump
    origins = [line for line in dump.splitlines() if "Origins-Pattern::" in line]
    assert origins and all("security" in line for line in origins), origins
    timers = deploy_sudo(provisioned.host, "systemctl is-enabled apt-daily-upgrade.timer")
    assert timers.strip() == "enabled"


def test_journal_is_persistent_and_capped(provisioned: Provisioned) -> None:
    config = deploy_sudo(provisioned.host, "systemd-analyze cat-config systemd/journald.conf")
    assert "Storage=persistent" in config
    assert "SystemMaxUse=500M" in config
    assert deploy_sudo(provisioned.host, "ls /var/log/journal").strip()


def test_time_sync_is_enabled(provisioned: Provisioned) -> None:
    enabled = deploy_sudo(provisioned.host, "systemctl is-enabled systemd-timesyncd")
    assert enabled.strip() == "enabled"


def test_firewall_refuses_a_ruleset_that_would_shut_sshd_out(provisioned: Provisioned) -> None:
    run = run_playbook(
        provisioned.inventory,
        "playbooks/harden.yml",
        "--extra-vars",
        "firewall_ssh_port=2222",
        "--tags",
        "firewall_preflight",
    )
    assert run.returncode != 0
    assert "sshd listens on [22] but the firewall" in run.output, run.output[-3000:]
    assert run.counts(provisioned.host.name)["changed"] == 0


def refused_run(provisioned: Provisioned, tags: str, extra: dict[str, object]) -> str:
    """harden.yml with inputs that would lock the operator out; it must stop and change nothing."""
    run = run_playbook(
        provisioned.inventory,
        "playbooks/harden.yml",
        "--extra-vars",
        json.dumps(extra),
        "--tags",
        tags,
    )
    assert run.returncode != 0, run.output[-3000:]
    assert run.counts(provisioned.host.name)["changed"] == 0, run.output[-3000:]
    return run.output


def test_refuses_a_run_without_operator_keys(provisioned: Provisioned) -> None:
    output = refused_run(provisioned, "common_preflight", {"common_deploy_authorized_keys": []})
    assert "common_deploy_authorized_keys must list at least one public key" in output


def test_refuses_an_admin_without_a_key(provisioned: Provisioned) -> None:
    admins = [{"name": "alice", "authorized_keys": []}]
    output = refused_run(provisioned, "common_preflight", {"common_admins": admins})
    assert "alice has not" in output, output[-2000:]


def test_refuses_a_login_user_without_keys(provisioned: Provisioned) -> None:
    # berth is the API's service user: it exists but has no authorized_keys.
    output = refused_run(provisioned, "ssh_preflight", {"ssh_verify_user": "berth"})
    assert "berth (ssh_verify_user) has no usable key" in output, output[-2000:]


def test_refuses_allow_groups_that_leave_the_login_user_out(provisioned: Provisioned) -> None:
    output = refused_run(provisioned, "ssh_preflight", {"ssh_allow_groups": ["wheel-nobody"]})
    assert "sshd would refuse the operator" in output, output[-2000:]


def test_refuses_a_port_move_the_firewall_does_not_follow(provisioned: Provisioned) -> None:
    output = refused_run(
        provisioned, "ssh_preflight", {"ssh_port": 2222, "ssh_firewall_follows": False}
    )
    assert "sshd would move to port 2222, which the firewall" in output, output[-2000:]
    assert "port 22" in deploy_sudo(provisioned.host, "sshd -T").splitlines()


def test_nginx_auth_jail_bans_repeated_401s(provisioned: Provisioned) -> None:
    """A 401 line as nginx writes it to the journal (tag berth_nginx_auth) counts toward a ban."""
    host = provisioned.host
    jail = "berth-nginx-auth"
    stranger = "198.51.100.7"  # a documentation address: banning it hurts nobody
    maxretry = int(deploy_sudo(host, f"fail2ban-client get {jail} maxretry"))
    line = f'{stranger} - - [01/Jan/2026:00:00:00 +0000] "GET /v1/model HTTP/2.0" 401 45 "-" "t"'
    try:
        for _ in range(maxretry):
            deploy_sudo(host, f"logger -t berth_nginx_auth '{line}'")
        deadline = time.monotonic() + BAN_WAIT
        while stranger not in deploy_sudo(host, f"fail2ban-client status {jail}"):
            assert time.monotonic() < deadline, deploy_sudo(host, f"fail2ban-client status {jail}")
            time.sleep(1)
        rules = deploy_sudo(host, "nft list table inet f2b-table")
        assert stranger in rules and "443" in rules, rules
    finally:
        ssh_as(host, "deploy", f"sudo fail2ban-client set {jail} unbanip {stranger}")


async def burst(url: str, count: int) -> list[int]:
    """count GETs, 25 at a time (well above the per-address rate); status 0 for a refused one."""
    limits = httpx.Limits(max_connections=25)
    async with httpx.AsyncClient(verify=False, timeout=10, limits=limits) as client:

        async def one() -> int:
            try:
                return (await client.get(url)).status_code
            except httpx.TransportError:
                return 0  # banned mid-burst: the connection is refused

        return list(await asyncio.gather(*(one() for _ in range(count))))


def test_rate_limit_hits_from_nginx_ban_the_client(provisioned: Provisioned) -> None:
    """A burst far above the /v1/ rate limit gets 429s, then fail2ban bans the web ports only."""
    host = provisioned.host
    jail = "berth-nginx-limit-req"
    me = control_node_address(host)
    bantime = int(deploy_sudo(host, f"fail2ban-client get {jail} bantime"))
    deploy_sudo(host, f"fail2ban-client set {jail} bantime {TEST_BANTIME}")
    deploy_sudo(host, f"fail2ban-client set {jail} delignoreip {TEST_NETWORK}")
    try:
        statuses = asyncio.run(burst(f"https://{host.address}/v1/model", 200))
        assert 429 in statuses, statuses
        deadline = time.monotonic() + BAN_WAIT
        while tcp_outcome(host.address, 443) == "open":
            assert time.monotonic() < deadline, deploy_sudo(host, f"fail2ban-client status {jail}")
            time.sleep(1)
        assert tcp_outcome(host.address, 443) == "refused"
        assert tcp_outcome(host.address, 80) == "refused"
        assert tcp_outcome(host.address, 22) == "open"
        assert me in deploy_sudo(host, f"fail2ban-client status {jail}")
        deadline = time.monotonic() + TEST_BANTIME + BAN_WAIT
        while tcp_outcome(host.address, 443) != "open":
            assert time.monotonic() < deadline, f"{me} still banned from 443"
            time.sleep(2)
    finally:
        ssh_as(host, "deploy", f"sudo fail2ban-client set {jail} bantime {bantime}")
        ssh_as(host, "deploy", f"sudo fail2ban-client set {jail} addignoreip {TEST_NETWORK}")
        ssh_as(host, "deploy", f"sudo fail2ban-client set {jail} unbanip {me}")


def test_repeated_failed_logins_ban_the_address(provisioned: Provisioned) -> None:
    host = provisioned.host
    me = control_node_address(host)
    maxretry = int(deploy_sudo(host, "fail2ban-client get sshd maxretry"))
    bantime = int(deploy_sudo(host, "fail2ban-client get sshd bantime"))
    deploy_sudo(host, f"fail2ban-client set sshd bantime {TEST_BANTIME}")
    # The local inventory ignores the test network (fail2ban_ignoreip) so that other tests' failed
    # logins never ban the control node; lift that for this test only, at runtime.
    deploy_sudo(host, f"fail2ban-client set sshd delignoreip {TEST_NETWORK}")
    try:
        started = time.monotonic()
        attempts = 0
        # fail2ban reads the journal with a lag of seconds (more on a busy machine): keep failing,
        # bounded, until the ban shows. Extra failures cannot ban the control node again later:
        # it is added to the ignore list at the end.
        deadline = started + BAN_WAIT
        while tcp_outcome(host.address, 22) == "open":
            if time.monotonic() > deadline:
                pytest.fail(
                    f"no ban {BAN_WAIT} s after {attempts} failed logins:\n{jail_state(host)}"
                )
            if attempts < 2 * maxretry:
                assert failed_login(host).returncode != 0
                attempts += 1
            time.sleep(1)
        banned_after = time.monotonic() - started
        # Refused at once (the jail's reject rule) while the web port answers: a per-port ban.
        assert tcp_outcome(host.address, 22) == "refused"
        assert tcp_outcome(host.address, 80) == "open"

        deadline = time.monotonic() + TEST_BANTIME + BAN_WAIT
        while ssh_as(host, "deploy", "true").returncode != 0:
            assert time.monotonic() < deadline, f"{me} still banned {TEST_BANTIME + BAN_WAIT} s on"
            time.sleep(2)
        log = deploy_sudo(host, "grep -F '[sshd]' /var/log/fail2ban.log")
        assert f"Ban {me}" in log and f"Unban {me}" in log, log[-2000:]
        status = deploy_sudo(host, "fail2ban-client status sshd")
        total = re.search(r"Total banned:\s+(\d+)", status)
        assert total and int(total[1]) >= 1, status
        print(f"banned after {attempts} failed logins in {banned_after:.1f} s")
    finally:
        # Runtime settings only (jail.local is untouched, so re-runs still change nothing): the
        # configured bantime and ignore list again.
        ssh_as(host, "deploy", f"sudo fail2ban-client set sshd bantime {bantime}")
        ssh_as(host, "deploy", f"sudo fail2ban-client set sshd addignoreip {TEST_NETWORK}")
