"""Independent checks of the host provisioned by site.yml: ssh-audit, Lynis, a full TCP port scan,
TLS and HTTP behaviour seen from the control node, and refused root/password logins.

Figures (Lynis hardening index, ssh-audit warnings, remaining Lynis warnings) are printed; run
pytest with -s to see them. docs/hardening.md explains every warning that is allowed here.
"""

from __future__ import annotations

import dataclasses
import json
import re
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from berth.vps import Config, Host, ssh_argv
from berth.vps import state as vps_state
from tests.system import portscan
from tests.system.conftest import Provisioned
from tests.system.test_site import deploy_sudo

pytestmark = pytest.mark.system

# The only TCP ports the firewall may let through: SSH, HTTP (redirect, ACME) and HTTPS.
PUBLIC_PORTS = {22, 80, 443}
# The target. The test VPS is a container, where kernel sysctls, auditd, acct, AppArmor and
# /proc options cannot count (docs/hardening.md lists them); it measures 85 (257 of 301 points), so
# one lost point still passes and two fail.
LYNIS_MIN_INDEX = 85
# Lynis warnings that are expected on the test host, each explained in docs/hardening.md.
# Any other warning fails the test (a new finding must be fixed or explained there).
LYNIS_ALLOWED_WARNINGS = {
    # The test host's base image lags behind the security archive until unattended-upgrades'
    # daily run; it has no real Internet, so the run never happens in CI.
    "PKGS-7392",
    # AIDE's first database is built in the background after provisioning (minutes of disk I/O);
    # until it is done Lynis says there is none.
    "FINT-4316",
}
LYNIS_TIMEOUT = 1200
SCAN_CONCURRENCY = 1500
SCAN_TIMEOUT = 1.5
# A scan that missed a listening port is repeated this often (see assert_only_public_ports_answer).
SCAN_ATTEMPTS = 3


def ssh_audit_binary() -> Path:
    path = Path(sys.executable).parent / "ssh-audit"
    if not path.exists():
        pytest.fail(f"{path} is missing: ssh-audit is pinned in requirements/control.txt")
    return path


def test_ssh_audit_finds_no_failures(provisioned: Provisioned) -> None:
    host = provisioned.host
    started = time.monotonic()
    result = subprocess.run(
        [str(ssh_audit_binary()), "--json", "--timeout", "20", f"{host.address}:22"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    # Exit codes: 0 good, 2 warnings, 3 failures, 1 connection error.
    assert result.returncode in (0, 2), result.stdout[-3000:] + result.stderr[-2000:]
    report = json.loads(result.stdout)
    recommendations = report.get("recommendations", {})
    assert "critical" not in recommendations, json.dumps(recommendations, indent=1)
    warnings = recommendations.get("warning", {})
    print(
        f"ssh-audit {report.get('banner', {}).get('software')}: exit {result.returncode}, "
        f"warnings: {json.dumps(warnings)} ({time.monotonic() - started:.1f} s)"
    )
    algorithms = {kind: [entry["algorithm"] for entry in report[kind]] for kind in ("kex", "enc")}
    assert not any("sha1" in name for name in algorithms["kex"]), algorithms
    assert not any("cbc" in name for name in algorithms["enc"]), algorithms


def lynis_report(host: Host) -> dict[str, list[str]]:
    """Install Lynis (Debian package) on the test host, audit it, and parse lynis-report.dat."""
    deploy_sudo(host, "env DEBIAN_FRONTEND=noninteractive apt-get install -y -q lynis")
    # A full audit takes minutes on a busy machine (4 min with 7 parallel jobs on 2 cores).
    audit = subprocess.run(
        ssh_argv(
            dataclasses.replace(host, user="deploy"),
            ["sudo lynis audit system --quick --no-colors"],
        ),
        capture_output=True,
        text=True,
        timeout=LYNIS_TIMEOUT,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert "Hardening index" in audit.stdout, audit.stdout[-2000:] + audit.stderr[-2000:]
    raw = deploy_sudo(host, "cat /var/log/lynis-report.dat")
    report: dict[str, list[str]] = {}
    for line in raw.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            report.setdefault(key.removesuffix("[]"), []).append(value)
    return report


def test_lynis_hardening_index_and_warnings(provisioned: Provisioned) -> None:
    started = time.monotonic()
    report = lynis_report(provisioned.host)
    index = int(report["hardening_index"][0])
    warnings = sorted({w.split("|")[0] for w in report.get("warning", [])})
    suggestions = sorted({s.split("|")[0] for s in report.get("suggestion", [])})
    print(
        f"Lynis {report.get('lynis_version', ['?'])[0]}: hardening index {index}, "
        f"{report.get('lynis_tests_done', ['?'])[0]} tests, warnings {warnings}, "
        f"suggestions {suggestions} ({time.monotonic() - started:.1f} s)"
    )
    for line in report.get("warning", []):
        print(f"  warning: {line}")
    assert index >= LYNIS_MIN_INDEX, f"Lynis hardening index {index} < {LYNIS_MIN_INDEX}"
    assert set(warnings) <= LYNIS_ALLOWED_WARNINGS, report.get("warning")


def state_of(host: Host) -> vps_state.HostState:
    record = vps_state.load(Config.from_env(), host.name)
    assert record is not None, f"no record of test host {host.name}"
    return record


def assert_only_public_ports_answer(target: portscan.Target) -> None:
    """Scan every TCP port: only SSH and the web ports may answer, and they must be open.

    A listening port that timed out means the control node was too busy to finish handshakes
    within the scan's timeout, so that scan proves nothing about the other ports either: scan
    again, and fail only when no scan saw the listening ports answer."""
    for attempt in range(1, SCAN_ATTEMPTS + 1):
        started = time.monotonic()
        outcome = portscan.run(
            target, range(1, 65536), concurrency=SCAN_CONCURRENCY, timeout=SCAN_TIMEOUT
        )
        answering = {port: state for port, state in outcome.items() if state != portscan.FILTERED}
        print(
            f"scan {attempt} of {target} (ports 1-65535): {answering} "
            f"in {time.monotonic() - started:.1f} s"
        )
        assert len(outcome) == 65535, f"the scan left out {65535 - len(outcome)} ports"
        unexpected = {
            port: state
            for port, state in answering.items()
            if port not in PUBLIC_PORTS or state != portscan.OPEN
        }
        assert not unexpected, f"only {sorted(PUBLIC_PORTS)} may answer, and open: {unexpected}"
        if answering.keys() == PUBLIC_PORTS:
            break
    else:
        pytest.fail(
            f"no scan in {SCAN_ATTEMPTS} saw {sorted(PUBLIC_PORTS - answering.keys())} answer "
            f"within {SCAN_TIMEOUT} s: the control node is too busy or those services are down"
        )
    # The listening ports once more, patiently: a busy machine may be slow, not closed.
    for port in PUBLIC_PORTS:
        portscan.connect(target, port, timeout=10)


def test_full_tcp_port_scan_finds_only_ssh_and_web(provisioned: Provisioned) -> None:
    """Every TCP port from the control node; dropped ports time out, nothing else may answer."""
    assert_only_public_ports_answer(portscan.Target.parse(provisioned.host.address))


def test_full_tcp_port_scan_over_ipv6_finds_only_ssh_and_web(provisioned: Provisioned) -> None:
    """The same scan over IPv6: the test host has only its link-local address on host0, reached
    from the control node through its end of the veth (the firewall's ip6 rules must hold too)."""
    shown = deploy_sudo(provisioned.host, "ip -6 -o addr show dev host0 scope link")
    match = re.search(r"inet6 (fe80::[0-9a-f:]+)/", shown)
    assert match, f"no IPv6 link-local address on host0: {shown}"
    target = portscan.Target.parse(f"{match.group(1)}%{state_of(provisioned.host).veth}")
    # Nothing has talked IPv6 to the host yet: resolve its neighbour entry with one patient
    # connection first, or the scan's first SYNs wait on neighbour discovery together.
    for attempt in range(3):
        try:
            portscan.connect(target, 22, timeout=10)
            break
        except OSError as exc:
            assert attempt < 2, f"SSH over IPv6 at [{target}]:22 does not answer: {exc}"
            time.sleep(2)
    assert_only_public_ports_answer(target)


def test_plain_http_redirects_to_https(provisioned: Provisioned) -> None:
    address = provisioned.host.address
    with httpx.Client(follow_redirects=False, timeout=10) as client:
        response = client.post(f"http://{address}/v1/predict?x=1", json={"records": []})
    assert response.status_code == 308
    assert response.headers["location"] == f"https://{address}/v1/predict?x=1"


def test_https_headers_and_private_paths(provisioned: Provisioned) -> None:
    base = f"https://{provisioned.host.address}"
    with httpx.Client(verify=False, timeout=10) as client:
        health = client.get(f"{base}/health")
        private = {path: client.get(base + path) for path in ("/metrics", "/docs", "/admin/")}
    assert health.status_code == 200
    assert health.headers["server"] == "nginx", "server_tokens off hides the version"
    assert health.headers["x-content-type-options"] == "nosniff"
    assert health.headers["x-frame-options"] == "SAMEORIGIN"
    assert health.headers["referrer-policy"] == "no-referrer"
    # An IP-only server has a self-signed certificate: HSTS would pin browsers to it.
    assert "strict-transport-security" not in health.headers
    for path, response in private.items():
        assert response.status_code == 404, path
        assert response.headers["content-type"] == "application/json", path
        assert response.json()["detail"].startswith("Not found"), path


def _handshake(address: str, version: ssl.TLSVersion) -> str | None:
    """The negotiated protocol, or None when the server refuses that version."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    # Let the client offer old versions at all, so a refusal comes from the server.
    context.set_ciphers("ALL:@SECLEVEL=0")
    context.minimum_version = version
    context.maximum_version = version
    try:
        with (
            socket.create_connection((address, 443), timeout=10) as raw,
            context.wrap_socket(raw) as tls,
        ):
            return tls.version()
    except (ssl.SSLError, ConnectionResetError):
        return None


def test_tls_offers_only_1_2_and_1_3(provisioned: Provisioned) -> None:
    address = provisioned.host.address
    assert _handshake(address, ssl.TLSVersion.TLSv1_3) == "TLSv1.3"
    assert _handshake(address, ssl.TLSVersion.TLSv1_2) == "TLSv1.2"
    assert _handshake(address, ssl.TLSVersion.TLSv1_1) is None
    assert _handshake(address, ssl.TLSVersion.TLSv1) is None


def _ssh(host: Host, user: str, *options: str) -> subprocess.CompletedProcess[str]:
    argv = [
        "ssh",
        "-o", "BatchMode=yes",
        "-o", "ConnectTimeout=10",
        "-o", "StrictHostKeyChecking=no",
        "-o", "UserKnownHostsFile=/dev/null",
        "-o", "ControlPath=none",
        *options,
        f"{user}@{host.address}",
        "true",
    ]  # fmt: skip
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, check=False
    )


def test_root_and_password_logins_are_refused(provisioned: Provisioned) -> None:
    host = provisioned.host
    key = ["-o", "IdentitiesOnly=yes", "-i", str(host.key_path)]
    root = _ssh(host, "root", *key)
    assert root.returncode == 255 and "Permission denied" in root.stderr, root.stderr
    # The server must not even offer password or keyboard-interactive authentication.
    password = _ssh(
        host,
        "deploy",
        "-o", "PubkeyAuthentication=no",
        "-o", "PreferredAuthentications=password,keyboard-interactive",
    )  # fmt: skip
    assert password.returncode == 255
    offered = re.search(r"Permission denied \(([^)]*)\)", password.stderr)
    assert offered and offered[1] == "publickey", password.stderr
    assert _ssh(host, "deploy", *key).returncode == 0


def test_service_users_have_no_login_shell(provisioned: Provisioned) -> None:
    passwd = deploy_sudo(provisioned.host, "getent passwd")
    shells = {line.split(":")[0]: line.split(":")[6] for line in passwd.splitlines()}
    login = {user for user, shell in shells.items() if not shell.endswith(("nologin", "false"))}
    # root keeps a shell for the console; sync's /bin/sync is Debian's default and not a shell.
    assert login <= {"root", "deploy", "sync"}, login
    assert shells.get("berth", "").endswith("nologin")
    groups = deploy_sudo(provisioned.host, "id -Gn deploy").split()
    assert "berth-ssh" in groups
    assert "allowgroups berth-ssh" in deploy_sudo(provisioned.host, "sshd -T").splitlines()
