"""Let's Encrypt through certbot, against a local ACME server (Pebble, Debian package `pebble`).

Pebble runs on the control node's end of the test host's link and validates HTTP-01 challenges by
fetching http://DOMAIN/.well-known/acme-challenge/... from the test host; pebble-challtestsrv is
its DNS server and answers every name with the test host's address. The nginx role runs alone on
a fresh host with nginx_domain set; then certbot's renewal dry run must succeed.
"""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from berth.vps import Host, write_inventory
from tests.system.ansible_run import REPO, changed_tasks, run_playbook
from tests.system.test_site import ssh_as
from tests.vps.plugin import VpsFactory

pytestmark = pytest.mark.system

DOMAIN = "berth-acme.test"
CA_ON_HOST = "/usr/local/share/berth-test/pebble-wfe.pem"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(address: str, port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((address, port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"nothing listens on {address}:{port} after {timeout} s")


def control_address(host: Host) -> str:
    return host.address.rsplit(".", 1)[0] + ".1"


@pytest.fixture
def acme_host(vps_factory: VpsFactory) -> Iterator[Host]:
    host = vps_factory.create("acme")
    try:
        yield host
    finally:
        vps_factory.destroy(host)


@pytest.fixture
def pebble(acme_host: Host, tmp_path: Path) -> Iterator[str]:
    """A running Pebble for the test host; yields its ACME directory URL."""
    for binary in ("pebble", "pebble-challtestsrv", "openssl"):
        if shutil.which(binary) is None:
            pytest.fail(f"{binary} is missing: scripts/install-system-deps.sh installs it")
    listen = control_address(acme_host)
    cert, key = tmp_path / "wfe.pem", tmp_path / "wfe.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "2", "-subj", "/CN=pebble", "-addext", f"subjectAltName=IP:{listen}",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    acme_port, dns_port = free_port(), free_port()
    config = {
        "pebble": {
            "listenAddress": f"{listen}:{acme_port}",
            "managementListenAddress": f"127.0.0.1:{free_port()}",
            "certificate": str(cert),
            "privateKey": str(key),
            "httpPort": 80,
            "tlsPort": 443,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": False,
        }
    }
    (tmp_path / "pebble.json").write_text(json.dumps(config))
    env = {"PATH": "/usr/bin:/bin", "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0"}
    dns = subprocess.Popen(
        ["pebble-challtestsrv", "-defaultIPv4", acme_host.address, "-defaultIPv6", "",
         "-dns01", f"127.0.0.1:{dns_port}", "-http01", "", "-https01", "", "-tlsalpn01", "",
         "-management", f"127.0.0.1:{free_port()}"],
        stdout=(tmp_path / "dns.log").open("w"), stderr=subprocess.STDOUT, env=env,
    )  # fmt: skip
    server = subprocess.Popen(
        ["pebble", "-config", str(tmp_path / "pebble.json"),
         "-dnsserver", f"127.0.0.1:{dns_port}"],
        stdout=(tmp_path / "pebble.log").open("w"), stderr=subprocess.STDOUT, env=env,
    )  # fmt: skip
    try:
        wait_for_port(listen, acme_port)
        # certbot on the host must trust Pebble's own HTTPS certificate.
        ca = cert.read_text()
        result = ssh_as(
            acme_host,
            "root",
            f"mkdir -p {Path(CA_ON_HOST).parent} && printf '%s' '{ca}' > {CA_ON_HOST}",
        )
        assert result.returncode == 0, result.stderr
        yield f"https://{listen}:{acme_port}/dir"
    finally:
        for process in (server, dns):
            process.terminate()
            process.wait(timeout=10)
        print((tmp_path / "pebble.log").read_text()[-3000:])


def test_certbot_gets_a_certificate_and_renewal_dry_run_succeeds(
    acme_host: Host, pebble: str, tmp_path: Path
) -> None:
    started = time.monotonic()
    inventory = tmp_path / "inventory"
    inventory.mkdir()
    write_inventory(inventory / "hosts.yml", [acme_host], {"app": [acme_host.name]})
    playbook = tmp_path / "nginx-domain.yml"
    playbook.write_text(
        yaml.safe_dump(
            [
                {
                    "name": "nginx with a domain",
                    "hosts": "all",
                    "become": True,
                    "roles": [{"role": str(REPO / "roles" / "nginx")}],
                    "vars": {
                        "nginx_domain": DOMAIN,
                        "nginx_certbot_server": pebble,
                        "nginx_certbot_environment": {"REQUESTS_CA_BUNDLE": CA_ON_HOST},
                    },
                }
            ]
        )
    )
    first = run_playbook(inventory, str(playbook))
    assert first.returncode == 0, first.output[-5000:]

    # nginx now serves the ACME-issued certificate for the domain, with HSTS.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection((acme_host.address, 443), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=DOMAIN) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    text = subprocess.run(
        ["openssl", "x509", "-inform", "DER", "-noout", "-issuer", "-ext", "subjectAltName"],
        input=der, capture_output=True, check=True,
    ).stdout.decode()  # fmt: skip
    assert "Pebble" in text and f"DNS:{DOMAIN}" in text, text
    with httpx.Client(verify=False, timeout=10) as client:
        health = client.get(f"https://{acme_host.address}/.well-known/x", headers={"Host": DOMAIN})
    assert health.headers["strict-transport-security"].startswith("max-age=")

    # certbot's dry run talks to Let's Encrypt's staging server unless told otherwise; a real
    # server runs plain `certbot renew --dry-run`, here the local Pebble stands in for staging.
    renew = ssh_as(
        acme_host,
        "root",
        f"REQUESTS_CA_BUNDLE={CA_ON_HOST} certbot renew --dry-run --no-random-sleep-on-renew"
        f" --server {pebble}",
    )
    assert renew.returncode == 0, renew.stdout[-3000:] + renew.stderr[-3000:]
    assert "all simulated renewals succeeded" in (renew.stdout + renew.stderr)
    timer = ssh_as(acme_host, "root", "systemctl is-enabled certbot.timer")
    assert timer.stdout.strip() == "enabled"

    again = run_playbook(inventory, str(playbook), "--diff")
    assert again.returncode == 0, again.output[-4000:]
    assert again.counts(acme_host.name)["changed"] == 0, changed_tasks(again.output)
    print(f"certbot + renewal dry run against Pebble: {time.monotonic() - started:.0f} s")
