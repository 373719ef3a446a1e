"""site.yml on a fresh test VPS: a hardened server that answers predictions through nginx.

The host is provisioned once (conftest `provisioned`); the read-only checks come first, then
the re-runs that must change nothing.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
from typing import Any

import httpx
import pytest

from berth.vps import Host, ssh_argv
from tests.system.ansible_run import changed_tasks, run_playbook
from tests.system.conftest import Provisioned, bundle_manifest

pytestmark = pytest.mark.system


def http(url: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    """GET (or POST a JSON body) through nginx; status and decoded JSON body.

    Follows redirects (plain HTTP answers 308 to HTTPS, which keeps a POST body) and skips the
    certificate check: the test server's certificate is self-signed (contract 1 of the brief).
    """
    with httpx.Client(follow_redirects=True, verify=False, timeout=10) as client:
        response = client.get(url) if body is None else client.post(url, json=body)
    return response.status_code, json.loads(response.content or b"null")


def ssh_as(host: Host, user: str, command: str) -> subprocess.CompletedProcess[str]:
    argv = ssh_argv(dataclasses.replace(host, user=user), [command])
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, check=False
    )


def deploy_sudo(host: Host, command: str) -> str:
    result = ssh_as(host, "deploy", f"sudo {command}")
    assert result.returncode == 0, f"{command!r} failed: {result.stderr}"
    return result.stdout


def test_first_run_provisions_without_failures(provisioned: Provisioned) -> None:
    counts = provisioned.first_run.counts(provisioned.host.name)
    assert counts["failed"] == 0
    assert counts["unreachable"] == 0
    assert counts["changed"] > 0


def test_health_answers_through_nginx(provisioned: Provisioned) -> None:
    status, body = http(f"https://{provisioned.host.address}/health")
    assert status == 200
    assert body == {"status": "ok"}


def test_predictions_through_nginx_match_the_golden_pairs(provisioned: Provisioned) -> None:
    manifest = bundle_manifest()
    golden = manifest["golden"]
    body = {"records": [pair["input"] for pair in golden]}
    status, answer = http(f"https://{provisioned.host.address}/v1/predict", body)
    assert status == 200, answer
    assert answer["model_version"] == manifest["version"]
    assert answer["fallback"] is False
    assert answer["predictions"] == [pair["output"]["prediction"] for pair in golden]


def test_invalid_input_gets_422_through_nginx(provisioned: Provisioned) -> None:
    status, answer = http(f"https://{provisioned.host.address}/v1/predict", {"records": [{}]})
    assert status == 422
    assert answer["detail"], "a 422 must say which fields are wrong"


def test_private_routes_are_not_served_by_nginx(provisioned: Provisioned) -> None:
    for path in ("/docs", "/openapi.json", "/metrics"):
        status, _ = http(f"https://{provisioned.host.address}{path}")
        assert status == 404, path


def test_root_login_is_refused_and_deploy_login_works(provisioned: Provisioned) -> None:
    assert ssh_as(provisioned.host, "root", "true").returncode != 0
    assert ssh_as(provisioned.host, "deploy", "true").returncode == 0


def test_sshd_allows_keys_only(provisioned: Provisioned) -> None:
    effective = deploy_sudo(provisioned.host, "sshd -T").splitlines()
    assert "passwordauthentication no" in effective
    assert "kbdinteractiveauthentication no" in effective
    assert "permitrootlogin no" in effective
    assert "authenticationmethods publickey" in effective


def test_container_skips_exactly_the_kernel_sysctls(provisioned: Provisioned) -> None:
    written = deploy_sudo(provisioned.host, "cat /etc/sysctl.d/90-berth.conf")
    assert "net.ipv4.tcp_syncookies" in written
    assert "kernel." not in written and "fs.protected" not in written
    live = deploy_sudo(provisioned.host, "sysctl -n net.ipv4.conf.all.accept_redirects")
    assert live.strip() == "0"


def test_api_runs_unprivileged_from_a_root_owned_release(provisioned: Provisioned) -> None:
    users = deploy_sudo(provisioned.host, "ps -o user= -C gunicorn").split()
    assert users and set(users) == {"berth"}
    owner = deploy_sudo(provisioned.host, "stat -L -c %U:%a /srv/berth/current")
    assert owner.strip() == "root:755"


def test_second_run_changes_nothing(provisioned: Provisioned) -> None:
    run = run_playbook(provisioned.inventory, "site.yml")
    counts = run.counts(provisioned.host.name)
    assert run.returncode == 0, run.output[-4000:]
    assert counts["changed"] == 0, changed_tasks(run.output)
    assert counts["failed"] == 0


def test_check_mode_on_a_provisioned_host_changes_nothing(provisioned: Provisioned) -> None:
    run = run_playbook(provisioned.inventory, "site.yml", "--check")
    counts = run.counts(provisioned.host.name)
    assert run.returncode == 0, run.output[-4000:]
    assert counts["changed"] == 0, run.output[-6000:]
