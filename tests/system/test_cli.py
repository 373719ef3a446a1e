"""The berth command against the shared provisioned host: status, logs (once and followed), a
refused rollback."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import uuid

import pytest

from tests.system.ansible_run import REPO
from tests.system.conftest import Provisioned, bundle_manifest
from tests.system.test_site import deploy_sudo
from tests.system.test_teardown import berth, summary_counts

pytestmark = pytest.mark.system


def test_status_reports_the_served_model_and_health(provisioned: Provisioned) -> None:
    result = berth("-i", str(provisioned.inventory), "status")
    name = provisioned.host.name
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{name} ({name})  healthy" in result.stdout
    assert f"model     {bundle_manifest()['name']} {bundle_manifest()['version']}" in result.stdout
    assert "health    200" in result.stdout

    raw = berth("-i", str(provisioned.inventory), "status", "--json")
    state = json.loads(raw.stdout)[name]
    assert state["model"]["version"] == bundle_manifest()["version"]
    assert state["units"]["berth-api.service"] == "running"


def test_logs_show_the_api_journal(provisioned: Provisioned) -> None:
    result = berth("-i", str(provisioned.inventory), "logs", "-n", "200")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"==> {provisioned.host.name} <==" in result.stdout
    assert "berth-api" in result.stdout


def test_logs_follow_prints_new_entries_once_with_their_host(provisioned: Provisioned) -> None:
    token = f"follow-{uuid.uuid4().hex[:8]}"
    follow = subprocess.Popen(
        [str(REPO / "bin" / "berth"), "-i", str(provisioned.inventory), "logs", "--follow"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        cwd=REPO,
    )
    try:
        time.sleep(10)  # a poll or two have run
        # A new entry in a berth-* unit, written after berth started following.
        deploy_sudo(provisioned.host, f"systemd-run --wait --unit berth-{token} /bin/echo {token}")
        time.sleep(15)
    finally:
        follow.send_signal(signal.SIGINT)
        output, _ = follow.communicate(timeout=60)
    assert follow.returncode == 0, output[-3000:]
    line = f"{provisioned.host.name} | "
    assert output.count(f"berth-{token}.service: {token}\n") == 1, output[-3000:]
    assert any(row.startswith(line) and row.endswith(token) for row in output.splitlines())


def test_rollback_to_a_version_not_on_the_host_fails_with_the_reason(
    provisioned: Provisioned,
) -> None:
    result = berth("-i", str(provisioned.inventory), "rollback", "0000deadbeef")
    assert result.returncode == 3, result.stdout + result.stderr
    assert summary_counts(result.stdout, provisioned.host.name)["failed"] == 1
    assert "Model version 0000deadbeef is not on" in result.stdout
    assert '"changed":' not in result.stdout  # the message, not the JSON result
