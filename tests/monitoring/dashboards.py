"""Read the provisioned Grafana dashboards of monitoring/grafana/ and their panels' queries."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
GRAFANA_DIR = REPO / "monitoring" / "grafana"
DASHBOARDS_DIR = GRAFANA_DIR / "dashboards"
DATASOURCES_FILE = GRAFANA_DIR / "datasources" / "berth.yml"

# Grafana's built-in variables, replaced the way Grafana would for a 6 h view of every host.
QUERY_VARIABLES = {
    "$__rate_interval": "2m",
    "$__interval": "30s",
    "$__range": "6h",
    '=~"$instance"': '=~".+"',
}


@dataclass(frozen=True)
class PanelQuery:
    dashboard: str
    panel: str
    ref_id: str
    expr: str

    def runnable(self) -> str:
        """The expression with Grafana's variables filled in, ready for the Prometheus API."""
        expr = self.expr
        for name, value in QUERY_VARIABLES.items():
            expr = expr.replace(name, value)
        return expr


def load_dashboards() -> dict[Path, dict[str, Any]]:
    return {path: json.loads(path.read_text()) for path in sorted(DASHBOARDS_DIR.glob("*.json"))}


def datasource_uids() -> set[str]:
    provisioning = yaml.safe_load(DATASOURCES_FILE.read_text())
    return {source["uid"] for source in provisioning["datasources"]}


def panel_queries(dashboards: dict[Path, dict[str, Any]] | None = None) -> list[PanelQuery]:
    queries = []
    for dashboard in (dashboards or load_dashboards()).values():
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                queries.append(
                    PanelQuery(dashboard["title"], panel["title"], target["refId"], target["expr"])
                )
    return queries
