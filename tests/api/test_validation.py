"""Input validation from the manifest: ranges with a margin, the column form, body size limit."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from app.core.config import Settings
from tests.api.conftest import client_for


def _feature(manifest: dict[str, Any], name: str) -> dict[str, Any]:
    feature: dict[str, Any] = next(f for f in manifest["features"] if f["name"] == name)
    return feature


def _failures(field: str) -> float:
    value = REGISTRY.get_sample_value("berth_validation_failures_total", {"field": field})
    return value or 0.0


@pytest.fixture(scope="module")
def no_range_client(bundle_dir: Path) -> Iterator[TestClient]:
    yield from client_for(Settings(model_dir=bundle_dir, range_margin=None))


@pytest.fixture(scope="module")
def small_body_client(bundle_dir: Path) -> Iterator[TestClient]:
    yield from client_for(Settings(model_dir=bundle_dir, max_body_bytes=2048))


def test_values_within_the_margin_are_accepted(
    client: TestClient, manifest: dict[str, Any], sample_record: dict[str, float]
) -> None:
    hue = _feature(manifest, "hue")
    width = hue["max"] - hue["min"]
    records = [
        {**sample_record, "hue": hue["max"] + 0.099 * width},
        {**sample_record, "hue": hue["min"] - 0.099 * width},
    ]
    response = client.post("/v1/predict", json={"records": records})
    assert response.status_code == 200, response.text
    assert len(response.json()["predictions"]) == 2


@pytest.mark.parametrize(("side", "word"), [(1, "above"), (-1, "below")])
def test_values_beyond_the_margin_are_refused(
    client: TestClient,
    manifest: dict[str, Any],
    sample_record: dict[str, float],
    side: int,
    word: str,
) -> None:
    hue = _feature(manifest, "hue")
    width = hue["max"] - hue["min"]
    value = (hue["max"] + 0.11 * width) if side > 0 else (hue["min"] - 0.11 * width)
    before = _failures("hue")
    response = client.post(
        "/v1/predict", json={"records": [sample_record, {**sample_record, "hue": value}]}
    )
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "records", 1, "hue"]
    assert error["type"] in ("greater_than_equal", "less_than_equal")
    assert error["msg"].startswith(f"{word} the accepted range [")
    assert f"training range [{hue['min']:.6g}, {hue['max']:.6g}]" in error["msg"]
    assert repr(value) not in response.text  # the value itself is not echoed
    assert _failures("hue") == before + 1


def test_range_check_can_be_turned_off(
    no_range_client: TestClient, sample_record: dict[str, float]
) -> None:
    response = no_range_client.post(
        "/v1/predict", json={"records": [{**sample_record, "hue": 1e6}]}
    )
    assert response.status_code == 200
    assert no_range_client.get("/v1/model").json()["range_margin"] is None


def test_model_schema_shows_accepted_ranges(client: TestClient, manifest: dict[str, Any]) -> None:
    body = client.get("/v1/model").json()
    assert body["range_margin"] == 0.1
    assert body["auth"] == "open"
    hue = _feature(manifest, "hue")
    width = hue["max"] - hue["min"]
    prop = body["input_schema"]["properties"]["hue"]
    assert prop["minimum"] == pytest.approx(hue["min"] - 0.1 * width)
    assert prop["maximum"] == pytest.approx(hue["max"] + 0.1 * width)
    assert body["input_schema"]["additionalProperties"] is False


def test_columns_give_the_same_answers_as_records(
    client: TestClient, manifest: dict[str, Any]
) -> None:
    records = [pair["input"] for pair in manifest["golden"]][:5]
    columns = {name: [r[name] for r in records] for name in records[0]}
    by_rows = client.post("/v1/predict", json={"records": records, "probabilities": True})
    by_columns = client.post("/v1/predict", json={"columns": columns, "probabilities": True})
    assert by_rows.status_code == by_columns.status_code == 200
    assert by_columns.json()["predictions"] == by_rows.json()["predictions"]
    assert by_columns.json()["probabilities"] == by_rows.json()["probabilities"]
    assert by_columns.json()["probabilities"] is not None


def test_columns_errors_name_feature_and_row(
    client: TestClient, sample_record: dict[str, float]
) -> None:
    columns: dict[str, list[Any]] = {name: [v, v] for name, v in sample_record.items()}
    columns["hue"] = [sample_record["hue"], "x"]
    columns["colour"] = [1, 2]
    del columns["ash"]
    before = _failures("_unknown_feature")
    response = client.post("/v1/predict", json={"columns": columns})
    assert response.status_code == 422
    found = {(tuple(e["loc"]), e["type"]) for e in response.json()["detail"]}
    assert found == {
        (("body", "columns", "hue", 1), "float_type"),
        (("body", "columns", "colour"), "extra_forbidden"),
        (("body", "columns", "ash"), "missing"),
    }
    assert _failures("_unknown_feature") == before + 1


def test_columns_of_uneven_length(client: TestClient, sample_record: dict[str, float]) -> None:
    columns = {name: [v, v] for name, v in sample_record.items()}
    columns["hue"] = [sample_record["hue"]]
    response = client.post("/v1/predict", json={"columns": columns})
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "columns", "hue"]
    assert error["type"] == "column_length"
    assert "has 1 values where other features have 2" in error["msg"]


@pytest.mark.parametrize(
    ("columns", "kind"),
    [({}, "too_short"), ({"hue": []}, "too_short"), ({"hue": [1.0] * 6}, "too_long")],
)
def test_columns_row_count(client: TestClient, columns: dict[str, Any], kind: str) -> None:
    response = client.post("/v1/predict", json={"columns": columns})
    assert response.status_code == 422
    assert [e["type"] for e in response.json()["detail"]] == [kind]


def test_oversized_body_with_length_is_413(
    small_body_client: TestClient, sample_record: dict[str, float]
) -> None:
    response = small_body_client.post("/v1/predict", json={"records": [sample_record] * 20})
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/json"
    assert "larger than 2048 bytes" in response.json()["detail"]
    assert response.headers["x-request-id"]


def test_oversized_chunked_body_is_413(
    small_body_client: TestClient, sample_record: dict[str, float]
) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"records": ['
        for _ in range(40):
            yield b'{"a": 1.0, "b": 2.0, "c": 3.0, "d": 4.0, "e": 5.0},'
        yield b"{}]}"

    response = small_body_client.post(
        "/v1/predict", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert "larger than 2048 bytes" in response.json()["detail"]


def test_small_chunked_body_passes(
    small_body_client: TestClient, sample_record: dict[str, float]
) -> None:
    import json

    def chunks() -> Iterator[bytes]:
        yield json.dumps({"records": [sample_record]}).encode()

    response = small_body_client.post(
        "/v1/predict", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 200, response.text
