"""The berth command line: argument errors, exit codes, model versions, status rendering."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from berth.cli import main as cli
from berth.cli import model, status
from berth.cli.exitcodes import Exit
from berth.cli.runner import REPO, CliError

BIN = REPO / "bin" / "berth"


def _probe_state(**overrides: Any) -> dict[str, Any]:
    state: dict[str, Any] = {
        "hostname": "web-1",
        "now": 1_000_000.0,
        "release": "24df653a894f123f",
        "model": {
            "version": "9b33fd8efdd8",
            "switched_at": 1_000_000.0 - 1200,
            "name": "wine-classifier",
            "created_at": "1970-01-12T13:06:40Z",
            "installed": ["11aa22bb33cc", "9b33fd8efdd8"],
        },
        "health": {"status": 200, "body": {"status": "ok"}},
        "ready": {"status": 200, "body": {"status": "ready"}},
        "units": {"berth-api.service": "running", "nginx.service": "running"},
        "deploys": [
            {"time": 1_000_000.0 - 7200, "action": "deploy", "version": "11aa22bb33cc"},
            {"time": 1_000_000.0 - 1200, "action": "deploy", "version": "9b33fd8efdd8"},
        ],
        "alerts": None,
        "targets_down": None,
    }
    state.update(overrides)
    return state


def test_bin_berth_runs_from_a_clean_checkout_and_lists_exit_codes() -> None:
    result = subprocess.run(
        [str(BIN), "--help"], capture_output=True, text=True, check=False, cwd="/"
    )
    assert result.returncode == 0, result.stderr
    for command in ("up", "deploy", "rollback", "status", "logs", "down", "vps"):
        assert f"    {command} " in result.stdout
    assert "    3  failed" in result.stdout


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["launch"])
    assert exc.value.code == Exit.USAGE
    assert "invalid choice: 'launch'" in capsys.readouterr().err


def test_missing_inventory_says_what_to_do(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["-i", "/nonexistent/inventory", "status"]) == Exit.ERROR
    assert "inventory /nonexistent/inventory does not exist" in capsys.readouterr().err


def test_down_without_a_terminal_needs_yes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    assert cli.main(["-i", str(tmp_path), "down"]) == Exit.ERROR
    assert "pass --yes" in capsys.readouterr().err


def test_deploy_passes_the_version_to_the_model_role() -> None:
    assert model.deploy_vars(REPO, "model-v3", None) == {"model_version": "model-v3"}
    assert model.deploy_vars(REPO, "0000aaaa1111", None) == {"model_version": "0000aaaa1111"}


def test_deploy_without_a_bundle_says_make_model(tmp_path: Path) -> None:
    with pytest.raises(CliError, match="run `make model`"):
        model.deploy_vars(REPO, None, tmp_path / "nothing-here")


def test_rollback_picks_the_version_served_before() -> None:
    states = [status.HostState("web-1", _probe_state())]
    assert model.previous_version(states) == "11aa22bb33cc"


def test_rollback_without_history_asks_for_a_version() -> None:
    states = [status.HostState("web-1", _probe_state(deploys=[]))]
    with pytest.raises(CliError, match=r"name a version.*11aa22bb33cc"):
        model.previous_version(states)


def test_status_renders_a_healthy_host_without_monitoring() -> None:
    states = [status.HostState("web-1", _probe_state())]
    text = status.render(states)
    assert "web-1 (web-1)  healthy" in text
    assert "wine-classifier 9b33fd8efdd8" in text
    assert "serving since 20m ago" in text
    assert "2h ago  deploy 11aa22bb33cc" in text
    assert "monitoring not installed" in text
    assert status.exit_code(states) is Exit.OK


def test_status_shows_firing_alerts_and_exits_unhealthy() -> None:
    alert = {"name": "BerthApiDown", "severity": "critical", "since": None, "summary": "API down"}
    states = [status.HostState("web-1", _probe_state(alerts=[alert]))]
    text = status.render(states)
    assert "alerts    1 FIRING" in text
    assert "critical  BerthApiDown" in text
    assert status.exit_code(states) is Exit.UNHEALTHY


def test_status_of_a_host_without_the_api() -> None:
    broken = _probe_state(model=None, health={"error": "[Errno 2] No such file or directory"})
    states = [status.HostState("web-1", broken)]
    text = status.render(states)
    assert "UNHEALTHY" in text and "model     none installed" in text
    assert status.exit_code(states) is Exit.UNHEALTHY


def test_status_of_a_load_balancer_that_left_an_app_host_out() -> None:
    lb = _probe_state(
        api_installed=False,
        model=None,
        health={"error": "[Errno 2] No such file or directory"},
        upstream={"app-1": "up", "app-2": "down"},
    )
    states = [status.HostState("lb-1", lb)]
    text = status.render(states)
    assert "lb-1 (web-1)  healthy" in text
    assert "api       not on this host (no app group)" in text
    assert "upstream  app-1 up, app-2 DOWN" in text
    assert status.exit_code(states) is Exit.UNHEALTHY
    lb["upstream"] = {"app-1": "up", "app-2": "up"}
    assert status.exit_code(states) is Exit.OK


def test_status_judges_the_api_by_the_hosts_inventory_groups() -> None:
    gone = {"api_installed": False, "model": None, "release": None}
    torn_down = _probe_state(**gone, groups=["app", "lb"], health={"error": "refused"})
    lb_only = _probe_state(**gone, groups=["lb", "monitoring"], health={"error": "refused"})
    app = status.HostState("app-1", torn_down)
    lb = status.HostState("lb-1", lb_only)
    assert not app.healthy and status.exit_code([app]) is Exit.UNHEALTHY
    assert "health    no answer (refused)" in status.render([app])
    assert lb.healthy and status.exit_code([lb]) is Exit.OK
    assert "api       not on this host (lb, monitoring)" in status.render([lb])


def test_probe_reads_the_groups_berth_passes(tmp_path: Path) -> None:
    probe = REPO / "berth" / "cli" / "probe.py"
    run = [sys.executable, str(probe)]
    with_groups = subprocess.run([*run, "--groups=app,lb"], capture_output=True, text=True)
    assert json.loads(with_groups.stdout)["groups"] == ["app", "lb"]
    by_hand = subprocess.run(run, capture_output=True, text=True, cwd=tmp_path)
    assert json.loads(by_hand.stdout)["groups"] is None


def test_unreachable_host_exits_unreachable() -> None:
    states = [status.HostState("web-1", None, "ssh: connect refused", unreachable=True)]
    assert "web-1  UNREACHABLE" in status.render(states)
    assert status.exit_code(states) is Exit.UNREACHABLE


def test_probe_runs_with_nothing_installed(tmp_path: Path) -> None:
    """probe.py on a machine without Berth: every field degrades instead of failing."""
    probe = REPO / "berth" / "cli" / "probe.py"
    result = subprocess.run(
        ["python3", str(probe)], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    state = json.loads(result.stdout)
    assert state["model"] is None
    assert "error" in state["health"]
    assert state["deploys"] == []
    assert state["alerts"] is None or isinstance(state["alerts"], dict | list)
