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
