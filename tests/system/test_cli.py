"""The berth command against the shared provisioned host: status, logs, a refused rollback."""

from __future__ import annotations

import json

import pytest

from tests.system.conftest import Provisioned, bundle_manifest
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


def test_rollback_to_a_version_not_on_the_host_fails_with_the_reason(
    provisioned: Provisioned,
) -> None:
    result = berth("-i", str(provisioned.inventory), "rollback", "0000deadbeef")
    assert result.returncode == 3, result.stdout + result.stderr
    assert summary_counts(result.stdout, provisioned.host.name)["failed"] == 1
    assert "Model version 0000deadbeef is not on" in result.stdout
    assert '"changed":' not in result.stdout  # the message, not the JSON result
