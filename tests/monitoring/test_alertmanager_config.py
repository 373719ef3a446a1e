"""The alertmanager role's templates, rendered by Ansible, pass amtool and produce the message."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from tests.monitoring.dashboards import REPO

ROLE = REPO / "roles" / "alertmanager"


def render(tmp_path: Path, webhook: str) -> Path:
    """Template alertmanager.yml and berth.tmpl into tmp_path with the role's own defaults."""
    templates = tmp_path / "alertmanager_templates"
    templates.mkdir()
    playbook = tmp_path / "render.yml"
    play = {
        "hosts": "localhost",
        "connection": "local",
        "gather_facts": False,
        "vars_files": [str(ROLE / "defaults" / "main.yml")],
        "tasks": [
            {
                "ansible.builtin.template": {
                    "src": str(ROLE / "templates" / src),
                    "dest": str(dest),
                    "mode": "0644",
                }
            }
            for src, dest in [
                ("alertmanager.yml.j2", tmp_path / "alertmanager.yml"),
                ("berth.tmpl.j2", templates / "berth.tmpl"),
            ]
        ],
    }
    playbook.write_text(yaml.safe_dump([play]))
    binary = Path(sys.executable).parent / "ansible-playbook"
    result = subprocess.run(
        [
            str(binary),
            "-i",
            "localhost,",
            "-e",
            f"ansible_python_interpreter={sys.executable}",
            "-e",
            json.dumps(
                {
                    "alertmanager_slack_webhook_url": webhook,
                    "__alertmanager_templates_dir": str(templates),
                }
            ),
            str(playbook),
        ],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return tmp_path / "alertmanager.yml"


def amtool() -> str:
    path = shutil.which("amtool")
    assert path, "amtool is missing: install prometheus-alertmanager (requirements/apt.txt)"
    return path


def test_rendered_config_with_a_webhook_passes_amtool(tmp_path: Path) -> None:
    config = render(tmp_path, "https://hooks.example.invalid/services/T0/B0/x")
    result = subprocess.run(
        [amtool(), "check-config", str(config)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    parsed = yaml.safe_load(config.read_text())
    assert parsed["route"]["receiver"] == "slack"
    slack = parsed["receivers"][1]["slack_configs"][0]
    assert slack["send_resolved"] is True
    assert parsed["route"]["group_by"] == ["alertname", "instance"]


def test_without_a_webhook_alerts_go_nowhere_and_the_config_is_valid(tmp_path: Path) -> None:
    config = render(tmp_path, "")
    result = subprocess.run(
        [amtool(), "check-config", str(config)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert yaml.safe_load(config.read_text())["route"]["receiver"] == "nowhere"


def test_the_message_template_says_where_and_links_the_dashboard(tmp_path: Path) -> None:
    render(tmp_path, "https://hooks.example.invalid/x")
    result = subprocess.run(
        [
            amtool(),
            "template",
            "render",
            f"--template.glob={tmp_path}/alertmanager_templates/*.tmpl",
            '--template.text={{ template "berth.slack.link" . }}',
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().startswith("https://localhost/grafana/d/"), result.stdout
