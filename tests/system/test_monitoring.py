"""Monitoring on the shared provisioned host: exporters, Prometheus, alert delivery, dashboards.

Grafana cannot be installed here, so the dashboards are proven through their queries: after
traffic with successes, 4xx, validation failures, 5xx and fallbacks, every panel query runs
against the host's real Prometheus and must return data. One alert (API down) goes end to end
to a Slack-format webhook receiver on the control node, then resolves.
The tests that stop or reconfigure the API restore it before they end.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from berth.vps import Host
from berth.vps.config import gateway
from tests.monitoring.dashboards import PanelQuery, panel_queries
from tests.monitoring.remote import get, query, query_many, sudo
from tests.system.ansible_run import run_playbook
from tests.system.conftest import Provisioned, bundle_manifest

pytestmark = pytest.mark.system

PANEL_RANGE_SECONDS = 15 * 60
SCRAPE_WAIT = 45  # seconds: two scrapes at the default 15 s interval, plus rule evaluation
# Why a panel can be empty on a healthy host, for the metrics that need something to happen first.
EMPTY_UNTIL = {
    "berth_feature_psi": "a worker saw 100 records since it started (see fill_drift_windows)",
    "berth_prediction_psi": "a worker saw 100 model predictions since it started",
    "berth_cleanup_": "the scheduler started (it creates the cleanup series at zero)",
    "berth_batch_": "the scheduler started and ran one batch",
}


def base_url(provisioned: Provisioned) -> str:
    return f"http://{provisioned.host.address}"


def client() -> httpx.Client:
    # Contract 1: works before and after nginx redirects to a self-signed HTTPS listener.
    return httpx.Client(follow_redirects=True, verify=False, timeout=20)


def wait_for(what: str, check: Callable[[], bool], timeout: float, every: float = 3) -> float:
    """Poll check() until it is true; return the seconds it took."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():
            return time.monotonic() - start
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def drive_traffic(provisioned: Provisioned, rounds: int) -> dict[int, int]:
    """Predictions (some repeated, so workers cache them), invalid bodies, unknown routes."""
    golden = [pair["input"] for pair in bundle_manifest()["golden"]]
    counts: dict[int, int] = {}
    with client() as http:
        for n in range(rounds):
            answers = [
                http.post(f"{base_url(provisioned)}/v1/predict", json={"records": golden}),
                http.post(f"{base_url(provisioned)}/v1/predict", json={"records": [{}]}),
                http.post(
                    f"{base_url(provisioned)}/v1/predict",
                    json={"records": [{**golden[0], "bogus_feature": 1.0}]},
                ),
                http.get(f"{base_url(provisioned)}/v1/no-such-route-{n % 3}"),
                http.get(f"{base_url(provisioned)}/ready"),
            ]
            for answer in answers:
                counts[answer.status_code] = counts.get(answer.status_code, 0) + 1
            time.sleep(0.25)  # stay under nginx's 20 r/s limit on /v1/
    return counts


DROPIN = "/etc/systemd/system/berth-api.service.d/zz-monitoring-test.conf"
TEST_ENV_FILE = "/etc/berth/zz-monitoring-test.env"


def write_file(host: Host, path: str, content: str) -> None:
    encoded = base64.b64encode(content.encode()).decode()
    sudo(host, f"sh -c 'echo {encoded} | base64 -d > {path}'")


def restart_api_with(provisioned: Provisioned, env: dict[str, str] | None) -> None:
    """Restart the API with extra BERTH_* settings, or without any (env None).

    A systemd drop-in adds an environment file read after berth.env (later files win).
    """
    host = provisioned.host
    if env is None:
        sudo(host, f"rm -f {DROPIN} {TEST_ENV_FILE}")
    else:
        sudo(host, "mkdir -p /etc/systemd/system/berth-api.service.d")
        write_file(host, TEST_ENV_FILE, "".join(f"{key}={value}\n" for key, value in env.items()))
        write_file(host, DROPIN, f"[Service]\nEnvironmentFile={TEST_ENV_FILE}\n")
    sudo(host, "systemctl daemon-reload")
    sudo(host, "systemctl restart berth-api.service")
    with client() as http:
        wait_for(
            "the API to be ready after its restart",
            lambda: http.get(f"{base_url(provisioned)}/ready").status_code == 200,
            timeout=90,
        )


@contextmanager
def api_with_test_settings(provisioned: Provisioned) -> Iterator[None]:
    """Leave the API as site.yml configured it, whatever happens inside."""
    try:
        yield
    finally:
        restart_api_with(provisioned, None)


def why_empty(query: PanelQuery) -> str:
    for marker, condition in EMPTY_UNTIL.items():
        if marker in query.expr:
            return f"no series; it appears once {condition}"
    return "no series"


def fill_drift_windows(provisioned: Provisioned) -> int:
    """Send batches until the API's metrics listener shows a feature PSI; returns the batches.

    Each worker publishes drift once its own window holds 100 records, and which worker takes a
    request is the kernel's choice, so send until it shows rather than a fixed count.
    """
    golden = [pair["input"] for pair in bundle_manifest()["golden"]]
    batch = (golden * (120 // len(golden) + 1))[:120]
    sent = 0
    with client() as http:
        while sent < 40:
            answer = http.post(f"{base_url(provisioned)}/v1/predict", json={"records": batch})
            assert answer.status_code == 200, answer.text
            sent += 1
            if "berth_feature_psi{" in get(provisioned.host, "http://127.0.0.1:9180/metrics")[1]:
                return sent
            time.sleep(0.25)
    raise AssertionError(f"no berth_feature_psi after {sent} batches of {len(batch)} records")


@pytest.fixture(scope="module")
def driven(provisioned: Provisioned) -> dict[int, int]:
    """2xx, 404 and 422, then fallbacks to a default answer, then 503s (no default) under a
    latency budget no inference meets; the API is restored afterwards."""
    counts = drive_traffic(provisioned, rounds=15)
    budget = {"BERTH_LATENCY_BUDGET_MS": "0.001"}
    default = {"BERTH_FALLBACK_DEFAULT": """'{"prediction": "class_0"}'"""}
    with api_with_test_settings(provisioned):
        for env in ({**budget, **default}, budget):
            restart_api_with(provisioned, env)
            for status, count in drive_traffic(provisioned, rounds=10).items():
                counts[status] = counts.get(status, 0) + count
            time.sleep(SCRAPE_WAIT)
    # After the restore: a restart empties the drift windows.
    counts[200] += fill_drift_windows(provisioned)
    time.sleep(SCRAPE_WAIT)
    return counts


def test_exporters_and_listeners_stay_on_loopback(provisioned: Provisioned) -> None:
    listening = sudo(provisioned.host, "ss -Hltn")
    for port in (9090, 9093, 9100, 9113, 9180):
        sockets = [
            line.split()[3]
            for line in listening.splitlines()
            if line.split()[3].endswith(f":{port}")
        ]
        assert sockets, f"nothing listens on port {port}:\n{listening}"
        assert all(s.startswith("127.0.0.1:") for s in sockets), f"port {port}: {sockets}"
    assert "9094" not in listening, "Alertmanager's cluster port must be off"


def test_metrics_listener_serves_the_api_metrics_and_stub_status(provisioned: Provisioned) -> None:
    status, body = get(provisioned.host, "http://127.0.0.1:9180/metrics")
    assert status == 200 and "berth_http_requests_total" in body, body[:500]
    status, body = get(provisioned.host, "http://127.0.0.1:9180/stub_status")
    assert status == 200 and "Active connections" in body, body
    with client() as http:
        assert http.get(f"{base_url(provisioned)}/metrics").status_code == 404


def test_prometheus_scrapes_every_local_target(provisioned: Provisioned) -> None:
    def healthy() -> bool:
        up = {r["metric"]["job"]: r["value"][1] for r in query(provisioned.host, "up")}
        return all(
            up.get(job) == "1"
            for job in ("node", "nginx", "berth-api", "alertmanager", "prometheus")
        )

    wait_for("every target but the scheduler to be up", healthy, timeout=90)
    up = {r["metric"]["job"]: r["value"][1] for r in query(provisioned.host, "up")}
    # The scheduler is scraped too; it is another helper's work and may be down on this branch.
    assert "berth-scheduler" in up, up


def test_retention_is_bounded_by_time_and_size(provisioned: Provisioned) -> None:
    flags = query_many(provisioned.host, ["prometheus_build_info"])[0]
    assert flags["status"] == "success"
    args = sudo(provisioned.host, "cat /etc/default/prometheus")
    assert (
        "--storage.tsdb.retention.time=15d" in args and "--storage.tsdb.retention.size=1GB" in args
    )


def test_every_dashboard_panel_returns_data(
    provisioned: Provisioned, driven: dict[int, int]
) -> None:
    assert driven.get(200) and driven.get(422) and driven.get(404), driven
    queries = panel_queries()
    # Range queries, as Grafana draws a panel: over the last 15 minutes (the dashboards open on the
    # last 6 h), which covers all of the driven traffic however long each phase took.
    answers = query_many(
        provisioned.host, [q.runnable() for q in queries], last_seconds=PANEL_RANGE_SECONDS
    )
    errors = [
        f"{q.dashboard} / {q.panel} [{q.ref_id}]: {a}"
        for q, a in zip(queries, answers, strict=True)
        if a["status"] != "success"
    ]
    assert not errors, "queries Prometheus rejected:\n" + "\n".join(errors)
    empty = [
        f"{q.dashboard} / {q.panel} [{q.ref_id}]: {why_empty(q)}\n    {q.runnable()}"
        for q, a in zip(queries, answers, strict=True)
        if not a["result"]
    ]
    total = len(queries)
    if not driven.get(503):
        empty.append(f"traffic: no 5xx answer under a zero latency budget, statuses {driven}")
    assert not empty, f"{len(empty)} of {total} panel queries return no data:\n" + "\n".join(empty)


class Webhook:
    """A Slack-compatible incoming webhook on the control node that keeps every message."""

    def __init__(self, address: str) -> None:
        self.messages: list[dict[str, Any]] = []
        messages = self.messages

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                messages.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((address, 0), Handler)
        self.url = f"http://{address}:{self.server.server_address[1]}/services/berth-test"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Webhook:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def find(self, alertname: str, status: str) -> dict[str, Any] | None:
        for message in self.messages:
            for attachment in message.get("attachments", []):
                title = attachment.get("title", "")
                if alertname in title and title.startswith(f"[{status.upper()}"):
                    found: dict[str, Any] = attachment
                    return found
        return None


FAST_ALERTING = [
    "-e",
    "prometheus_scrape_interval=5s",
    "-e",
    "prometheus_scrape_timeout=4s",
    "-e",
    "prometheus_evaluation_interval=5s",
    "-e",
    "alertmanager_group_wait=5s",
    "-e",
    "alertmanager_group_interval=10s",
]


def test_api_down_alert_reaches_the_webhook_and_resolves(provisioned: Provisioned) -> None:
    host = provisioned.host
    with Webhook(gateway(host.index)) as hook:
        run = run_playbook(
            provisioned.inventory,
            "playbooks/monitoring.yml",
            *FAST_ALERTING,
            "-e",
            f"alertmanager_slack_webhook_url={hook.url}",
        )
        assert run.returncode == 0, run.output[-4000:]
        try:
            stopped = time.monotonic()
            sudo(host, "systemctl stop berth-api.socket berth-api.service")
            try:
                fired = wait_for(
                    "the BerthApiDown message",
                    lambda: hook.find("BerthApiDown", "firing") is not None,
                    timeout=240,
                )
            finally:
                sudo(host, "systemctl start berth-api.socket berth-api.service")
            restarted = time.monotonic()
            resolved = wait_for(
                "the resolved notice",
                lambda: hook.find("BerthApiDown", "resolved") is not None,
                timeout=240,
            )
        finally:
            restore = run_playbook(provisioned.inventory, "playbooks/monitoring.yml")
            assert restore.returncode == 0, restore.output[-4000:]
    firing = hook.find("BerthApiDown", "firing")
    assert firing is not None
    text = firing["text"]
    assert f"Model API down on {host.name}" in text, text
    assert f"Where: {host.name}" in text and "Since: " in text and " UTC" in text, text
    assert "/grafana/d/berth-traffic" in text and firing["title_link"].endswith(
        "/d/berth-traffic"
    ), firing
    assert firing["color"] == "danger"
    notice = hook.find("BerthApiDown", "resolved")
    assert notice is not None and "Resolved at: " in notice["text"] and notice["color"] == "good"
    print(
        f"\nBerthApiDown: firing message {fired:.0f} s after the API stopped "
        f"(rule 'for' 1m, 5 s scrape/eval), resolved notice {resolved:.0f} s after it restarted "
        f"(stop to restart {restarted - stopped:.0f} s)"
    )


def test_memory_of_every_service_under_load(provisioned: Provisioned) -> None:
    """RSS per systemd unit while the API serves predictions; everything but Grafana <= 600 MB."""
    golden = [pair["input"] for pair in bundle_manifest()["golden"]]
    stop = threading.Event()

    def load() -> None:
        with client() as http:
            while not stop.is_set():
                http.post(f"{base_url(provisioned)}/v1/predict", json={"records": golden * 50})
                time.sleep(0.1)

    workers = [threading.Thread(target=load) for _ in range(3)]
    for worker in workers:
        worker.start()
    try:
        time.sleep(10)
        table = sudo(provisioned.host, "ps -eo unit:60,rss --no-headers")
    finally:
        stop.set()
        for worker in workers:
            worker.join()
    per_unit: dict[str, int] = {}
    for line in table.splitlines():
        unit, rss = line.rsplit(None, 1)
        if unit.endswith(".service") and unit != "-":
            per_unit[unit] = per_unit.get(unit, 0) + int(rss)
    report = "\n".join(
        f"  {unit:40} {kib / 1024:7.1f} MB"
        for unit, kib in sorted(per_unit.items(), key=lambda i: -i[1])
    )
    total = sum(kib for unit, kib in per_unit.items() if not unit.startswith("grafana")) / 1024
    print(f"\nRSS per service under load:\n{report}\n  total without Grafana: {total:.1f} MB")
    assert "prometheus.service" in per_unit and "berth-api.service" in per_unit, report
    assert total <= 600, f"services use {total:.0f} MB, over the 600 MB budget:\n{report}"
