"""Metrics in Gunicorn's multiprocess mode: each worker is a process writing to one directory.

prometheus_client picks its mode when first imported, so every "worker" here is a subprocess
with ``PROMETHEUS_MULTIPROC_DIR`` set; this test process only reads the directory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, multiprocess
from prometheus_client.parser import text_string_to_metric_families

from app.gunicorn_hooks import child_exit, on_starting
from app.services.drift import psi
from tests.unit.app.reference_bundle import BINS, add_reference

ROOT = Path(__file__).resolve().parents[3]

WORKER = """
import os, sys
from pathlib import Path
from fastapi.testclient import TestClient
from app.core.config import Settings
from app.main import create_app

app = create_app(Settings(model_dir=Path(sys.argv[2]), log_level="ERROR"))
with TestClient(app) as client:
    for _ in range(int(sys.argv[1])):
        assert client.get("/health").status_code == 200
    if len(sys.argv) > 3:
        sys.stdout.write(client.get("/metrics").text)
print(os.getpid(), file=sys.stderr)
"""


def run_worker(metrics_dir: Path, requests: int, scrape: bool = False) -> str:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    args = [sys.executable, "-c", WORKER, str(requests), str(metrics_dir / "no-bundle")]
    result = subprocess.run(
        [*args, "scrape"] if scrape else args,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


HEALTH_200 = (
    "berth_http_requests_total",
    (("method", "GET"), ("route", "/health"), ("status", "200")),
)


@pytest.fixture
def metrics_dir(tmp_path: Path) -> Path:
    path = tmp_path / "metrics"
    path.mkdir()
    return path


def test_two_workers_counters_add_up(metrics_dir: Path) -> None:
    run_worker(metrics_dir, 3)
    scraped = samples(run_worker(metrics_dir, 4, scrape=True))
    assert scraped[HEALTH_200] == 7
    assert scraped[("berth_model_load_failures_total", ())] == 2
    hist = (
        "berth_http_request_duration_seconds_count",
        (("method", "GET"), ("route", "/health")),
    )
    assert scraped[hist] == 7


def test_scrape_lists_every_metric_family(metrics_dir: Path) -> None:
    scraped = samples(run_worker(metrics_dir, 1, scrape=True))
    names = {name for name, _ in scraped}
    assert {
        "berth_http_requests_total",
        "berth_http_request_duration_seconds_bucket",
        "berth_http_requests_in_flight",
        "berth_model_load_failures_total",
    } <= names
    # The scrape itself is in flight while the metrics are read.
    assert scraped[("berth_http_requests_in_flight", ())] == 1


def test_child_exit_drops_a_dead_workers_live_gauge(
    metrics_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_worker(metrics_dir, 1)
    gauges = sorted(metrics_dir.glob("gauge_livesum_*.db"))
    assert len(gauges) == 1
    pid = int(gauges[0].stem.rsplit("_", 1)[1])
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(metrics_dir))
    child_exit(server=None, worker=SimpleNamespace(pid=pid))
    assert not list(metrics_dir.glob("gauge_livesum_*.db"))
    # Counters of the dead worker stay: they are totals, not live values.
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(metrics_dir))  # type: ignore[no-untyped-call]
    assert registry.get_sample_value("berth_http_requests_total", dict(HEALTH_200[1])) == 1


def test_child_exit_without_multiprocess_dir_does_nothing(
    metrics_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (metrics_dir / "gauge_livesum_4242.db").write_bytes(b"")
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    child_exit(server=None, worker=SimpleNamespace(pid=4242))
    assert (metrics_dir / "gauge_livesum_4242.db").exists()


PREDICT_WORKER = """
import json, os, sys
from pathlib import Path
from fastapi.testclient import TestClient
from app.core.config import Settings
from app.main import create_app

bundle, records = Path(sys.argv[1]), json.loads(sys.argv[2])
settings = Settings(model_dir=bundle, log_level="ERROR", drift_window=10, drift_interval_seconds=0)
with TestClient(create_app(settings)) as client:
    if records:
        assert client.post("/v1/predict", json={"records": records}).status_code == 200
    if len(sys.argv) > 3:
        sys.stdout.write(client.get("/metrics").text)
print(os.getpid(), file=sys.stderr)
"""


def run_predict_worker(
    metrics_dir: Path, bundle: Path, records: list[dict[str, float]], scrape: bool = False
) -> tuple[int, str]:
    """One worker process: predicts ``records`` once; returns its pid and optional scrape."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    args = [sys.executable, "-c", PREDICT_WORKER, str(bundle), json.dumps(records)]
    result = subprocess.run(
        [*args, "scrape"] if scrape else args,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return int(result.stderr.strip().splitlines()[-1]), result.stdout


@pytest.fixture(scope="module")
def reference_bundle(bundle_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return add_reference(bundle_dir, tmp_path_factory.mktemp("ref") / "bundle")


def golden(bundle: Path) -> list[dict[str, Any]]:
    pairs: list[dict[str, Any]] = json.loads((bundle / "manifest.json").read_text())["golden"]
    return pairs


def test_two_workers_merge_model_and_drift_gauges(
    metrics_dir: Path, reference_bundle: Path
) -> None:
    pairs = golden(reference_bundle)
    manifest = json.loads((reference_bundle / "manifest.json").read_text())
    same = [pairs[0]["input"]] * 10  # one bin per feature: strong drift
    mixed = [pair["input"] for pair in pairs] * 2  # spread over bins: less drift
    run_predict_worker(metrics_dir, reference_bundle, same)
    _, text = run_predict_worker(metrics_dir, reference_bundle, mixed, scrape=True)
    scraped = samples(text)
    info = (("name", manifest["name"]), ("version", manifest["version"]))
    assert scraped[("berth_model_info", info)] == 1  # livemax: not 2
    assert scraped[("berth_model_ready", ())] == 1
    assert scraped[("berth_prediction_score_count", ())] == 20  # counters add up
    assert scraped[("berth_drift_window_records", ())] == 20  # livesum
    # livemax: the merged PSI is the worse worker's, the one that saw a single bin.
    counts = [0] * BINS
    feature = manifest["features"][0]
    low, high = feature["min"], feature["max"]
    edges = [low + i * (high - low) / BINS for i in range(1, BINS)]
    counts[sum(pairs[0]["input"][feature["name"]] >= edge for edge in edges)] = 10
    psi_same = psi([25] * BINS, counts)
    assert scraped[("berth_feature_psi", (("feature", feature["name"]),))] == pytest.approx(
        psi_same
    )


def test_model_ready_is_zero_while_any_live_worker_has_no_model(
    metrics_dir: Path, reference_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_model_pid, _ = run_predict_worker(metrics_dir, metrics_dir / "no-bundle", [])
    _, text = run_predict_worker(metrics_dir, reference_bundle, [], scrape=True)
    assert samples(text)[("berth_model_ready", ())] == 0  # livemin
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(metrics_dir))
    child_exit(server=None, worker=SimpleNamespace(pid=no_model_pid))
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(metrics_dir))  # type: ignore[no-untyped-call]
    assert registry.get_sample_value("berth_model_ready", {}) == 1


def test_on_starting_empties_the_metrics_directory(
    metrics_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_worker(metrics_dir, 1)
    assert list(metrics_dir.glob("*.db"))
    (metrics_dir / "keep.txt").write_text("not a metrics file")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(metrics_dir))
    on_starting(server=None)
    assert not list(metrics_dir.glob("*.db"))
    assert (metrics_dir / "keep.txt").exists()


FORKED = """
import os, sys
import app.gunicorn_hooks  # what the Gunicorn master does when it reads its config
pid = os.fork()
if pid == 0:  # a worker
    print(sys.getswitchinterval(), os.environ["OMP_NUM_THREADS"], os.environ["MKL_NUM_THREADS"])
    os._exit(0)
os.waitpid(pid, 0)
"""


def test_workers_inherit_switch_interval_and_thread_counts() -> None:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    env["MKL_NUM_THREADS"] = "3"  # an operator's explicit choice is kept
    result = subprocess.run(
        [sys.executable, "-c", FORKED], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0.0005", "1", "3"]
