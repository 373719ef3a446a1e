"""API keys through the app: several keys, scopes, rotation and revocation without a restart."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.core.config import Settings
from app.keys import new_key
from app.services.auth import hash_key
from tests.api.conftest import client_for

ALICE, BOB, READER = new_key(), new_key(), new_key()


def write_keys(path: Path, text: str) -> None:
    """Replace the key file the way an operator (or Ansible) does: new file, then rename."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    path = tmp_path / "api-keys"
    write_keys(
        path,
        f"# name hash scopes\nalice {hash_key(ALICE)}\nbob {hash_key(BOB)} predict\n"
        f"reader {hash_key(READER)} model  # comment\n",
    )
    return path


@pytest.fixture
def secured(bundle_dir: Path, keys_file: Path) -> Iterator[TestClient]:
    yield from client_for(Settings(model_dir=bundle_dir, api_keys_file=keys_file))


def _predict(client: TestClient, record: dict[str, float], **headers: str) -> Any:
    return client.post("/v1/predict", json={"records": [record]}, headers=headers)


def test_missing_key_is_401(secured: TestClient, sample_record: dict[str, float]) -> None:
    response = _predict(secured, sample_record)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert "missing API key" in response.json()["detail"]


def test_unknown_key_is_401(secured: TestClient, sample_record: dict[str, float]) -> None:
    response = _predict(secured, sample_record, **{"X-API-Key": new_key()})
    assert response.status_code == 401
    assert "invalid API key" in response.json()["detail"]


@pytest.mark.parametrize("key", [ALICE, BOB])
def test_every_listed_key_works(
    secured: TestClient, sample_record: dict[str, float], key: str
) -> None:
    assert _predict(secured, sample_record, **{"X-API-Key": key}).status_code == 200
    bearer = {"Authorization": f"Bearer {key}"}
    assert _predict(secured, sample_record, **bearer).status_code == 200


def test_key_without_the_scope_is_403(
    secured: TestClient, sample_record: dict[str, float]
) -> None:
    response = _predict(secured, sample_record, **{"X-API-Key": READER})
    assert response.status_code == 403
    assert "'reader' may not use this route (needs scope 'predict'" in response.json()["detail"]
    assert secured.get("/v1/model", headers={"X-API-Key": READER}).status_code == 200
    assert secured.get("/v1/model", headers={"X-API-Key": BOB}).status_code == 403


def test_auth_comes_before_validation(secured: TestClient) -> None:
    response = secured.post("/v1/predict", json={"records": [{"bad": 1}]})
    assert response.status_code == 401


def test_health_ready_and_metrics_need_no_key(secured: TestClient) -> None:
    for path in ("/health", "/ready", "/metrics"):
        assert secured.get(path).status_code == 200, path


def test_model_says_keys_are_required(secured: TestClient) -> None:
    body = secured.get("/v1/model", headers={"X-API-Key": ALICE}).json()
    assert body["auth"] == "api_key"


def test_rotation_and_revocation_without_restart(
    secured: TestClient, keys_file: Path, sample_record: dict[str, float]
) -> None:
    carol = new_key()
    # Rotation: the new key is added next to the old one...
    write_keys(keys_file, f"alice {hash_key(ALICE)}\nalice-2 {hash_key(carol)}\n")
    assert _predict(secured, sample_record, **{"X-API-Key": carol}).status_code == 200
    assert _predict(secured, sample_record, **{"X-API-Key": ALICE}).status_code == 200
    assert _predict(secured, sample_record, **{"X-API-Key": BOB}).status_code == 401
    # ...then the old one is revoked.
    write_keys(keys_file, f"alice-2 {hash_key(carol)}\n")
    assert _predict(secured, sample_record, **{"X-API-Key": ALICE}).status_code == 401
    assert _predict(secured, sample_record, **{"X-API-Key": carol}).status_code == 200


def test_in_place_edit_is_seen(
    secured: TestClient, keys_file: Path, sample_record: dict[str, float]
) -> None:
    """Even an edit that keeps the inode and the size (same-length hash) is picked up."""
    dave = new_key()
    text = keys_file.read_text().replace(hash_key(BOB), hash_key(dave))
    stat = keys_file.stat()
    keys_file.write_text(text)
    os.utime(keys_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert _predict(secured, sample_record, **{"X-API-Key": dave}).status_code == 200
    assert _predict(secured, sample_record, **{"X-API-Key": BOB}).status_code == 401


def test_bad_lines_are_skipped_not_fatal(
    secured: TestClient, keys_file: Path, sample_record: dict[str, float]
) -> None:
    write_keys(keys_file, f"broken\nalice {hash_key(ALICE)} admin\nbob {hash_key(BOB)}\n")
    assert _predict(secured, sample_record, **{"X-API-Key": BOB}).status_code == 200
    assert _predict(secured, sample_record, **{"X-API-Key": ALICE}).status_code == 401


def test_unreadable_key_file_fails_closed(
    bundle_dir: Path, tmp_path: Path, sample_record: dict[str, float]
) -> None:
    unreadable = tmp_path / "api-keys"
    unreadable.mkdir()  # exists, cannot be read as a file (root ignores mode bits)
    for client in client_for(Settings(model_dir=bundle_dir, api_keys_file=unreadable)):
        response = _predict(client, sample_record, **{"X-API-Key": ALICE})
        assert response.status_code == 401
        assert "cannot be read" in response.json()["detail"]


def test_removing_the_file_opens_the_api(
    secured: TestClient, keys_file: Path, sample_record: dict[str, float]
) -> None:
    assert _predict(secured, sample_record).status_code == 401
    keys_file.unlink()
    assert _predict(secured, sample_record).status_code == 200
    assert secured.get("/v1/model").json()["auth"] == "open"


def test_open_api_warns_at_startup(
    bundle_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for client in client_for(Settings(model_dir=bundle_dir, api_keys_file=tmp_path / "none")):
        assert client.get("/v1/model").json()["auth"] == "open"
    warnings = [line for line in capsys.readouterr().err.splitlines() if '"berth.auth"' in line]
    assert any("no API keys configured: the API is open" in line for line in warnings)
