"""Structure of the provisioned dashboards: what Grafana needs to load them, with stable uids."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.monitoring.dashboards import datasource_uids, load_dashboards, panel_queries

EXPECTED = {"berth-traffic", "berth-model", "berth-jobs", "berth-host"}
PANEL_KEYS = {"id", "type", "title", "datasource", "gridPos", "targets"}


@pytest.fixture(scope="module")
def dashboards() -> dict[Path, dict[str, Any]]:
    return load_dashboards()


def test_the_four_dashboards_exist_with_stable_unique_uids(
    dashboards: dict[Path, dict[str, Any]],
) -> None:
    uids = [d["uid"] for d in dashboards.values()]
    assert sorted(uids) == sorted(EXPECTED)
    for path, dashboard in dashboards.items():
        assert re.fullmatch(r"[a-z0-9-]{1,40}", dashboard["uid"]), path
        assert dashboard["title"].startswith("Berth / "), path
        assert isinstance(dashboard["schemaVersion"], int), path
        assert "id" not in dashboard, (
            f"{path}: a fixed numeric id clashes between Grafana instances"
        )


def test_panels_have_what_grafana_needs_and_unique_ids(
    dashboards: dict[Path, dict[str, Any]],
) -> None:
    for path, dashboard in dashboards.items():
        ids = [panel["id"] for panel in dashboard["panels"]]
        assert len(ids) == len(set(ids)), f"{path}: duplicate panel ids"
        for panel in dashboard["panels"]:
            missing = PANEL_KEYS - panel.keys()
            assert not missing, f"{path} {panel.get('title')}: missing {missing}"
            grid = panel["gridPos"]
            assert grid["x"] + grid["w"] <= 24 and grid["w"] > 0 and grid["h"] > 0, panel["title"]
            refs = [t["refId"] for t in panel["targets"]]
            assert refs and len(refs) == len(set(refs)), f"{panel['title']}: refIds {refs}"


def test_every_datasource_reference_resolves_to_the_provisioned_one(
    dashboards: dict[Path, dict[str, Any]],
) -> None:
    known = datasource_uids() | {"-- Grafana --"}
    for path, dashboard in dashboards.items():
        refs = [p["datasource"] for p in dashboard["panels"]]
        refs += [t["datasource"] for p in dashboard["panels"] for t in p["targets"]]
        refs += [a["datasource"] for a in dashboard["annotations"]["list"]]
        refs += [v["datasource"] for v in dashboard["templating"]["list"] if "datasource" in v]
        unresolved = [r for r in refs if r["uid"] not in known]
        assert not unresolved, f"{path}: datasource uids {unresolved} are not provisioned"


def test_every_panel_query_is_valid_promql() -> None:
    """promtool parses each query as the expression of a rule (it has no stand-alone parser)."""
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: install the prometheus package (requirements/apt.txt)"
    queries = panel_queries()
    assert len(queries) > 30
    lines = ["groups:", "  - name: panels", "    rules:"]
    for n, query in enumerate(queries):
        lines += [f"      - record: panel_{n}", f"        expr: {query.runnable()!r}"]
    rules = Path(__file__).parent / ".panels.rules.yml"
    try:
        rules.write_text("\n".join(lines) + "\n")
        result = subprocess.run(
            [promtool, "check", "rules", str(rules)], capture_output=True, text=True, check=False
        )
    finally:
        rules.unlink(missing_ok=True)
    assert result.returncode == 0, result.stdout + result.stderr
