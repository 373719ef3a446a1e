"""API keys on the provisioned server, through nginx: open by default (inventory/local), then a
key file written on the server takes effect without a restart, and removing it opens the API
again. The file is put back as the role wrote it, so the other system tests see an open API."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest

from app.keys import new_key
from app.services.auth import hash_key
from tests.system.conftest import Provisioned, bundle_manifest
from tests.system.test_site import deploy_sudo

pytestmark = pytest.mark.system

KEYS_FILE = "/etc/berth/api-keys"


def base_url(client: httpx.Client, address: str) -> str:
    """Where nginx serves the API (https once TLS is on: the redirect says so)."""
    response = client.get(f"http://{address}/health")
    assert response.status_code == 200
    return str(response.url).removesuffix("/health")


def write_keys(provisioned: Provisioned, text: str) -> None:
    """Replace the key file atomically, as root, mode 0640 root:berth."""
    encoded = base64.b64encode(text.encode()).decode()  # only [A-Za-z0-9+/=]: safe to quote
    deploy_sudo(
        provisioned.host,
        f"sh -c 'echo {encoded} | base64 -d > {KEYS_FILE}.new && "
        f"chown root:berth {KEYS_FILE}.new && chmod 0640 {KEYS_FILE}.new && "
        f"mv {KEYS_FILE}.new {KEYS_FILE}'",
    )


def main_pid(provisioned: Provisioned) -> str:
    return deploy_sudo(provisioned.host, "systemctl show -p MainPID --value berth-api").strip()


def test_keys_take_effect_without_restart(provisioned: Provisioned) -> None:
    record: dict[str, Any] = bundle_manifest()["golden"][0]["input"]
    host = provisioned.host
    stat = deploy_sudo(host, f"stat -c '%a %U %G' {KEYS_FILE}").split()
    assert stat == ["640", "root", "berth"]
    original = deploy_sudo(host, f"cat {KEYS_FILE}")
    pid = main_pid(provisioned)
    key = new_key()
    with httpx.Client(follow_redirects=True, verify=False, timeout=10) as client:
        url = base_url(client, host.address)
        assert client.get(f"{url}/v1/model").json()["auth"] == "open"
        try:
            write_keys(provisioned, f"system-test {hash_key(key)} predict\n")
            body = {"records": [record]}
            assert client.post(f"{url}/v1/predict", json=body).status_code == 401
            answer = client.post(f"{url}/v1/predict", json=body, headers={"X-API-Key": key})
            assert answer.status_code == 200, answer.text
            bearer = {"Authorization": f"Bearer {key}"}
            assert client.post(f"{url}/v1/predict", json=body, headers=bearer).status_code == 200
            assert client.get(f"{url}/v1/model", headers={"X-API-Key": key}).status_code == 403
            assert client.get(f"{url}/ready").status_code == 200  # never needs a key
        finally:
            write_keys(provisioned, original)
        assert client.post(f"{url}/v1/predict", json={"records": [record]}).status_code == 200
    assert main_pid(provisioned) == pid  # no restart
