from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from app.core.config import Settings
from tests.api.conftest import client_for


def test_health_with_model(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_ready_with_model(client: TestClient, manifest: dict[str, Any]) -> None:
    response = client.get("/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "model_version": manifest["version"]}


def test_health_without_model(client_without_model: TestClient) -> None:
    response = client_without_model.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_ready_without_model(client_without_model: TestClient) -> None:
    response = client_without_model.get("/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert "no model bundle at" in body["detail"]


def test_tampered_bundle_is_not_served(bundle_dir: Path, tmp_path: Path) -> None:
    bundle = Path(shutil.copytree(bundle_dir, tmp_path / "bundle"))
    data = json.loads((bundle / "manifest.json").read_text())
    data["files"]["model.onnx"] = "f" * 64
    (bundle / "manifest.json").write_text(json.dumps(data))
    for client in client_for(Settings(model_dir=bundle)):
        health, ready = client.get("/health"), client.get("/ready")
        assert health.status_code == 200
        assert ready.status_code == 503
        assert "does not match its content" in ready.json()["detail"]


def test_openapi_has_stable_operation_ids(client: TestClient) -> None:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert paths["/v1/predict"]["post"]["operationId"] == "predict-predict"
    assert paths["/v1/model"]["get"]["operationId"] == "models-read_model"
    assert "503" in paths["/v1/predict"]["post"]["responses"]
    assert "503" in paths["/ready"]["get"]["responses"]


def test_ready_turns_ready_once_a_good_bundle_appears(bundle_dir: Path, tmp_path: Path) -> None:
    link = tmp_path / "current"
    link.symlink_to(tmp_path / "not-yet")
    for client in client_for(Settings(model_dir=link, model_retry_seconds=3600)):
        assert client.get("/ready").status_code == 503
        assert client.post("/v1/predict", json={"records": [{}]}).status_code == 503
        link.unlink()
        link.symlink_to(bundle_dir)  # a deploy repoints the link
        response = client.get("/ready")
        assert response.status_code == 200
        assert response.json()["status"] == "ready"


def test_golden_mismatch_keeps_the_worker_unready(
    bundle_dir: Path, tmp_path: Path, manifest: dict[str, Any]
) -> None:
    """/ready needs the golden check to pass, not only a loadable model."""
    bundle = Path(shutil.copytree(bundle_dir, tmp_path / "bundle"))
    data = json.loads((bundle / "manifest.json").read_text())
    classes = data["output"]["classes"]
    expected = data["golden"][0]["output"]["prediction"]
    data["golden"][0]["output"]["prediction"] = next(c for c in classes if c != expected)
    (bundle / "manifest.json").write_text(json.dumps(data))  # golden pairs are not hashed
    for client in client_for(Settings(model_dir=bundle)):
        ready = client.get("/ready")
        assert ready.status_code == 503
        assert ready.json()["detail"].startswith("golden pair 0: predicted")
        assert client.get("/v1/model").status_code == 503


def test_every_answer_of_the_api_is_declared(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert set(paths["/v1/predict"]["post"]["responses"]) == {
        "200", "400", "401", "403", "413", "422", "503"
    }  # fmt: skip
    assert set(paths["/v1/model"]["get"]["responses"]) == {"200", "401", "403", "503"}
    schemes = client.get("/openapi.json").json()["components"]["securitySchemes"]
    assert set(schemes) == {"APIKeyHeader", "HTTPBearer"}
