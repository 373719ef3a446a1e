"""The alert rules of monitoring/rules/ pass promtool's checks and their unit tests."""

from __future__ import annotations

import shutil
import subprocess

import yaml

from tests.monitoring.dashboards import REPO, load_dashboards

RULES = REPO / "monitoring" / "rules" / "berth.yml"
RULE_TESTS = REPO / "monitoring" / "tests" / "berth_test.yml"
REQUIRED_ALERTS = {
    "BerthApiDown",
    "BerthTargetDown",
    "BerthHighErrorRate",
    "BerthLatencyOverBudget",
    "BerthFallbackRateHigh",
    "BerthModelNotReady",
    "BerthModelLoadFailed",
    "BerthFeatureDrift",
    "BerthPredictionDrift",
    "BerthModelTooOld",
    "BerthBatchResultsStale",
    "BerthCleanupJobFailing",
    "BerthDiskAlmostFull",
    "BerthMemoryPressure",
    "BerthTlsCertificateExpiring",
    "BerthRedisDown",
}


def promtool() -> str:
    path = shutil.which("promtool")
    assert path, "promtool is missing: install the prometheus package (requirements/apt.txt)"
    return path


def alerts() -> list[dict[str, object]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_rules_pass_promtool_check() -> None:
    result = subprocess.run(
        [promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_rule_unit_tests_pass() -> None:
    result = subprocess.run(
        [promtool(), "test", "rules", str(RULE_TESTS)],
        capture_output=True,
        text=True,
        check=False,
        cwd=RULE_TESTS.parent,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_required_alert_exists_and_has_a_unit_test() -> None:
    names = {str(rule["alert"]) for rule in alerts()}
    assert names >= REQUIRED_ALERTS, REQUIRED_ALERTS - names
    tested = {
        case["alertname"]
        for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert names <= tested, f"alerts without a firing test case: {names - tested}"


def test_every_alert_says_what_and_links_an_existing_dashboard() -> None:
    uids = {d["uid"] for d in load_dashboards().values()}
    for rule in alerts():
        annotations = rule["annotations"]
        labels = rule["labels"]
        assert isinstance(annotations, dict) and isinstance(labels, dict)
        assert {"summary", "description", "dashboard"} <= annotations.keys(), rule["alert"]
        assert annotations["dashboard"] in uids, rule["alert"]
        assert labels["severity"] in {"critical", "warning"}, rule["alert"]
