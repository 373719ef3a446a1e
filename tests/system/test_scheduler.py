"""berth-scheduler on the shared provisioned host: both kinds of job run under systemd on a
short schedule, the metrics endpoint shows them, and /v1/batch/latest serves the results
through nginx.

The short schedules come from a drop-in with a second environment file (removed at the end,
so the host is left as site.yml made it); cleanup keeps every model and release, so only the
planted leftovers and the old rotated log can go.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import shlex
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.system.conftest import Provisioned, bundle_manifest
from tests.system.test_site import ssh_as

pytestmark = pytest.mark.system

DROPIN_DIR = "/etc/systemd/system/berth-scheduler.service.d"
TEST_ENV = "/etc/berth/scheduler-systemtest.env"
ROWS = 25


def sudo(provisioned: Provisioned, script: str) -> str:
    result = ssh_as(provisioned.host, "deploy", f"sudo sh -c {shlex.quote(script)}")
    assert result.returncode == 0, f"{script!r} failed: {result.stderr}"
    return result.stdout


def put_file(provisioned: Provisioned, path: str, content: str, owner: str = "root") -> None:
    encoded = base64.b64encode(content.encode()).decode()
    sudo(
        provisioned,
        f"echo {encoded} | base64 -d > {path}.part && chown {owner}: {path}.part "
        f"&& mv {path}.part {path}",
    )


def scheduler_metrics(provisioned: Provisioned) -> dict[str, float]:
    text = sudo(
        provisioned,
        'python3 -c "import urllib.request; print(urllib.request.urlopen('
        "'http://127.0.0.1:9181/metrics', timeout=5).read().decode())\"",
    )
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def wait_for_scheduler_metrics(provisioned: Provisioned, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            scheduler_metrics(provisioned)
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(2)


def csv_records() -> str:
    manifest = bundle_manifest()
    inputs = [pair["input"] for pair in manifest["golden"]]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=["id", *inputs[0]])
    writer.writeheader()
    for i in range(ROWS):
        writer.writerow({"id": i, **inputs[i % len(inputs)]})
    return out.getvalue()


@pytest.fixture
def short_schedules(provisioned: Provisioned) -> Iterator[None]:
    put_file(
        provisioned,
        TEST_ENV,
        'BERTH_BATCH_SCHEDULE="* * * * *"\nBERTH_CLEANUP_SCHEDULE="* * * * *"\n'
        "BERTH_CLEANUP_MODELS_KEEP=1000\nBERTH_CLEANUP_RELEASES_KEEP=1000\n",
    )
    sudo(
        provisioned,
        f"mkdir -p {DROPIN_DIR} && printf '[Service]\\nEnvironmentFile={TEST_ENV}\\n' "
        f"> {DROPIN_DIR}/systemtest.conf && systemctl daemon-reload "
        "&& systemctl restart berth-scheduler",
    )
    wait_for_scheduler_metrics(provisioned)  # a busy host takes seconds to start it
    try:
        yield
    finally:
        sudo(
            provisioned,
            f"rm -rf {DROPIN_DIR} {TEST_ENV} /srv/berth/models/.tmp-systest-new "
            "&& systemctl daemon-reload && systemctl restart berth-scheduler",
        )
        wait_for_scheduler_metrics(provisioned)  # later tests on this host may read them


def test_scheduler_is_a_sandboxed_service_of_the_berth_user(provisioned: Provisioned) -> None:
    show = sudo(
        provisioned,
        "systemctl show berth-scheduler -p ActiveState -p User -p ProtectSystem "
        "-p NoNewPrivileges -p AmbientCapabilities",
    )
    props = dict(line.split("=", 1) for line in show.splitlines() if "=" in line)
    assert props["ActiveState"] == "active"
    assert props["User"] == "berth"
    assert props["ProtectSystem"] == "strict" and props["NoNewPrivileges"] == "yes"
    assert props["AmbientCapabilities"] == "cap_dac_override"
    listeners = sudo(provisioned, "ss -Hltn 'sport = :9181'")
    assert {line.split()[3] for line in listeners.splitlines()} == {"127.0.0.1:9181"}
    dry = ssh_as(
        provisioned.host,
        "deploy",
        "sudo -u berth /srv/berth/current/venv/bin/python -m app.jobs run cleanup-models "
        "--dry-run",
    )
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["dry_run"] is True


def test_both_kinds_of_job_run_on_schedule_and_show_in_metrics(
    provisioned: Provisioned, short_schedules: None
) -> None:
    sudo(
        provisioned,
        "mkdir -p /srv/berth/models/.tmp-systest-old /srv/berth/models/.tmp-systest-new "
        "&& touch -d '3 days ago' /srv/berth/models/.tmp-systest-old "
        "&& echo old > /var/log/berth/systest.log.7.gz "
        "&& touch -d '30 days ago' /var/log/berth/systest.log.7.gz",
    )
    put_file(provisioned, "/var/lib/berth/batch/incoming/systest.csv", csv_records(), "berth")
    before = scheduler_metrics(provisioned)
    wanted = {
        'berth_job_runs_total{job="batch-score",outcome="success"}',
        'berth_job_runs_total{job="cleanup-leftovers",outcome="success"}',
        'berth_job_runs_total{job="cleanup-logs",outcome="success"}',
    }
    deadline = time.monotonic() + 150  # the next minute boundary, plus slack on busy cores
    samples = before
    while True:
        samples = scheduler_metrics(provisioned)
        rows = samples.get("berth_batch_rows_scored_total", 0)
        if all(samples.get(name, 0) >= 1 for name in wanted) and rows >= ROWS:
            break
        assert time.monotonic() < deadline, {k: v for k, v in samples.items() if "job" in k}
        time.sleep(5)

    assert samples['berth_cleanup_items_removed_total{job="cleanup-leftovers"}'] >= 1
    assert samples['berth_cleanup_items_removed_total{job="cleanup-logs"}'] >= 1
    assert (
        samples['berth_job_last_success_timestamp_seconds{job="batch-score"}'] > time.time() - 600
    )
    assert samples["berth_batch_last_success_timestamp_seconds"] > 0
    assert samples["berth_batch_lag_seconds"] == 0
    assert 'berth_job_duration_seconds_count{job="batch-score"}' in samples
    remaining = sudo(provisioned, "ls -a /srv/berth/models /var/log/berth")
    assert ".tmp-systest-old" not in remaining and "systest.log.7.gz" not in remaining
    assert ".tmp-systest-new" in remaining  # within the grace period: maybe a deploy running
    assert "current" in remaining

    with httpx.Client(follow_redirects=True, verify=False, timeout=10) as client:
        answer = client.get(f"http://{provisioned.host.address}/v1/batch/latest?limit=5")
        model = client.get(f"http://{provisioned.host.address}/v1/model").json()
    assert answer.status_code == 200, answer.text
    latest = answer.json()
    assert latest["rows"] == ROWS and latest["stale"] is False
    assert latest["model_version"] == model["version"]
    assert [row["origin"] for row in latest["results"]] == [f"systest.csv:{i}" for i in range(5)]
    assert all(row["error"] is None or row["error"] == "" for row in latest["results"])

    journal = sudo(provisioned, "journalctl -u berth-scheduler -o cat --no-pager -n 200")
    done = [json.loads(line) for line in journal.splitlines() if line.startswith("{")]
    assert any(r.get("message") == "batch scored" and r.get("rows") == ROWS for r in done)
