"""Real Gunicorn, two uvicorn workers on a unix socket, one metrics directory: the hooks clean
the directory at start and mark a killed worker dead; counters survive it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.unit.app.reference_bundle import add_reference

ROOT = Path(__file__).resolve().parents[3]

CONF = """
from app.gunicorn_hooks import child_exit, on_starting  # noqa: F401
bind = "unix:{socket}"
worker_class = "uvicorn_worker.UvicornWorker"
workers = 2
worker_tmp_dir = "/dev/shm"
graceful_timeout = 5
"""


def workers_of(master: int) -> set[int]:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return {int(pid) for pid in children}


def scrape(client: httpx.Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = client.get("/metrics").text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def wait_for(condition: Any, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def server(bundle_dir: Path, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    bundle = add_reference(bundle_dir, tmp_path / "bundle")
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    (metrics_dir / "counter_99999999.db").write_bytes(b"left over from an earlier run")
    socket = tmp_path / "api.sock"
    (tmp_path / "gunicorn.conf.py").write_text(CONF.format(socket=socket))
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "BERTH_MODEL_DIR": str(bundle),
        "BERTH_LOG_LEVEL": "WARNING",
        "BERTH_DRIFT_WINDOW": "10",
        "BERTH_DRIFT_INTERVAL_SECONDS": "0",
    }
    gunicorn = Path(sys.executable).parent / "gunicorn"
    log = (tmp_path / "gunicorn.log").open("wb")
    proc = subprocess.Popen(
        [str(gunicorn), "-c", str(tmp_path / "gunicorn.conf.py"), "app.main:app"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield proc, tmp_path
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def test_two_gunicorn_workers_share_metrics_and_a_killed_worker_is_marked_dead(
    server: tuple[subprocess.Popen[bytes], Path],
) -> None:
    proc, tmp = server
    metrics_dir = tmp / "metrics"
    transport = httpx.HTTPTransport(uds=str(tmp / "api.sock"))
    manifest = json.loads((tmp / "bundle" / "manifest.json").read_text())
    record = manifest["golden"][0]["input"]
    with httpx.Client(transport=transport, base_url="http://berth", timeout=10) as client:

        def both_loaded() -> bool:
            scraped = scrape(client)
            return scraped.get(("berth_model_load_seconds_count", ())) == 2

        wait_for(both_loaded, "both workers to load the model")
        assert not (metrics_dir / "counter_99999999.db").exists()  # on_starting cleaned up
        pids = workers_of(proc.pid)
        assert len(pids) == 2
        for _ in range(20):
            assert client.post("/v1/predict", json={"records": [record]}).status_code == 200
        before = scrape(client)
        labels = (("method", "POST"), ("route", "/v1/predict"), ("status", "200"))
        predicted = ("berth_http_requests_total", labels)
        assert before[predicted] == 20
        info = (("name", manifest["name"]), ("version", manifest["version"]))
        assert before[("berth_model_info", info)] == 1
        assert before[("berth_model_ready", ())] == 1

        victim = min(pids)
        os.kill(victim, signal.SIGKILL)
        wait_for(
            lambda: (
                len(workers_of(proc.pid) - {victim}) == 2
                and scrape(client).get(("berth_model_load_seconds_count", ())) == 3
            ),
            "the replacement worker to load the model",
        )
        after = scrape(client)
        assert after[predicted] == 20  # the killed worker's counts are kept
        assert after[("berth_model_ready", ())] == 1
        assert after[("berth_model_info", info)] == 1
        assert not list(metrics_dir.glob(f"gauge_live*_{victim}.db"))
        assert list(metrics_dir.glob(f"counter_{victim}.db"))
