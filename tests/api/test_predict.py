from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.core.logging import JsonFormatter


def _post_raw(client: TestClient, body: str, query: str = "") -> Any:
    return client.post(
        f"/v1/predict{query}", content=body, headers={"content-type": "application/json"}
    )


def _error_locs(response: Any) -> list[list[Any]]:
    return [error["loc"] for error in response.json()["detail"]]


def test_predict_one_record(
    client: TestClient, manifest: dict[str, Any], sample_record: dict[str, float]
) -> None:
    response = client.post("/v1/predict", json={"records": [sample_record]})
    assert response.status_code == 200
    body = response.json()
    assert body["model_version"] == manifest["version"]
    assert body["predictions"] == [manifest["golden"][0]["output"]["prediction"]]
    assert body["probabilities"] is None
    assert body["fallback"] is False
    assert body["request_id"] == response.headers["x-request-id"]


def test_predict_with_probabilities(client: TestClient, manifest: dict[str, Any]) -> None:
    records = [pair["input"] for pair in manifest["golden"]]
    response = client.post("/v1/predict?probabilities=true", json={"records": records})
    assert response.status_code == 200
    body = response.json()
    assert body["predictions"] == [pair["output"]["prediction"] for pair in manifest["golden"]]
    classes = manifest["output"]["classes"]
    for got, pair in zip(body["probabilities"], manifest["golden"], strict=True):
        assert list(got) == classes
        assert got == pytest.approx(pair["output"]["probabilities"], abs=1e-6)


def test_integers_are_accepted_as_numbers(
    client: TestClient, sample_record: dict[str, float]
) -> None:
    record = {**sample_record, "magnesium": 100}
    response = client.post("/v1/predict", json={"records": [record]})
    assert response.status_code == 200
    assert len(response.json()["predictions"]) == 1


def test_caller_request_id_is_kept(client: TestClient, sample_record: dict[str, float]) -> None:
    response = client.post(
        "/v1/predict", json={"records": [sample_record]}, headers={"X-Request-ID": "abc-123"}
    )
    assert response.status_code == 200
    assert response.json()["request_id"] == "abc-123"
    assert response.headers["x-request-id"] == "abc-123"


def test_unsafe_request_id_is_replaced(client: TestClient) -> None:
    response = client.get("/health", headers={"X-Request-ID": "x" * 65})
    assert response.status_code == 200
    assert response.headers["x-request-id"] != "x" * 65


def test_missing_feature(client: TestClient, sample_record: dict[str, float]) -> None:
    record = dict(sample_record)
    del record["proline"]
    response = client.post("/v1/predict", json={"records": [record]})
    assert response.status_code == 422
    assert response.json()["detail"] == [
        {
            "loc": ["body", "records", 0, "proline"],
            "msg": "required feature missing: send every feature; GET /v1/model lists the "
            "features and their accepted values",
            "type": "missing",
        }
    ]


def test_unknown_feature(client: TestClient, sample_record: dict[str, float]) -> None:
    response = client.post("/v1/predict", json={"records": [{**sample_record, "colour": 1.0}]})
    assert response.status_code == 422
    assert response.json()["detail"] == [
        {
            "loc": ["body", "records", 0, "colour"],
            "msg": "unknown feature: remove it; GET /v1/model lists the features and their "
            "accepted values",
            "type": "extra_forbidden",
        }
    ]


@pytest.mark.parametrize("value", ["12.5", True, None, [1.0], {"v": 1}])
def test_wrong_type(client: TestClient, sample_record: dict[str, float], value: Any) -> None:
    response = client.post("/v1/predict", json={"records": [{**sample_record, "hue": value}]})
    assert response.status_code == 422
    assert _error_locs(response) == [["body", "records", 0, "hue"]]
    assert response.json()["detail"][0]["msg"] == (
        "must be a JSON number (no quotes, not a boolean or null)"
    )


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_value(client: TestClient, sample_record: dict[str, float], token: str) -> None:
    record = json.dumps({**sample_record, "hue": "PLACEHOLDER"}).replace('"PLACEHOLDER"', token)
    response = _post_raw(client, f'{{"records": [{record}]}}')
    assert response.status_code == 422
    assert response.json()["detail"] == [
        {
            "loc": ["body", "records", 0, "hue"],
            "msg": "must be a finite number: NaN and Infinity are not accepted",
            "type": "finite_number",
        }
    ]


def test_one_message_per_bad_field_across_records(
    client: TestClient, sample_record: dict[str, float]
) -> None:
    second = {**sample_record, "hue": "x", "ash": None}
    response = client.post("/v1/predict", json={"records": [sample_record, second]})
    assert response.status_code == 422
    assert sorted(_error_locs(response)) == [
        ["body", "records", 1, "ash"],
        ["body", "records", 1, "hue"],
    ]


def test_errors_do_not_echo_input(client: TestClient, sample_record: dict[str, float]) -> None:
    response = client.post("/v1/predict", json={"records": [{**sample_record, "hue": "secret"}]})
    assert response.status_code == 422
    assert "secret" not in response.text


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ('{"records": []}', ["body", "records"]),
        ('{"records": NaN}', ["body", "records"]),
        ('{"records": [1]}', ["body", "records", 0]),
        ("{}", ["body"]),
        ('{"records": [{}], "columns": {}}', ["body"]),
        ('{"records": [{}], "extra": 1}', ["body", "extra"]),
        ("[]", ["body"]),
        ("not json", ["body", 0]),
    ],
)
def test_malformed_body(client: TestClient, body: str, loc: list[Any]) -> None:
    response = _post_raw(client, body)
    assert response.status_code == 422
    assert _error_locs(response) == [loc]


def test_too_many_records(client: TestClient, sample_record: dict[str, float]) -> None:
    response = client.post("/v1/predict", json={"records": [sample_record] * 6})
    assert response.status_code == 422
    assert response.json()["detail"] == [
        {
            "loc": ["body", "records"],
            "msg": "at most 5 records per request; split the batch into several requests",
            "type": "too_long",
        }
    ]


def test_predict_without_model(
    client_without_model: TestClient, sample_record: dict[str, float]
) -> None:
    response = client_without_model.post("/v1/predict", json={"records": [sample_record]})
    assert response.status_code == 503
    assert response.json()["detail"].startswith("no model loaded: no model bundle at")


def test_model_summary(client: TestClient, manifest: dict[str, Any]) -> None:
    response = client.get("/v1/model")
    assert response.status_code == 200
    body = response.json()
    assert (body["name"], body["version"], body["format"]) == (
        "wine-classifier",
        manifest["version"],
        "onnx",
    )
    assert body["output"] == manifest["output"]
    assert body["features"] == manifest["features"]
    schema = body["input_schema"]
    assert schema["additionalProperties"] is False
    assert schema["required"] == [feature["name"] for feature in manifest["features"]]
    assert "golden" not in body


def test_model_summary_without_model(client_without_model: TestClient) -> None:
    response = client_without_model.get("/v1/model")
    assert response.status_code == 503
    assert "no model loaded" in response.json()["detail"]


def test_access_log_has_context_but_no_feature_values(
    client: TestClient, sample_record: dict[str, float]
) -> None:
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(JsonFormatter().format(record))  # type: ignore[method-assign]
    logger = logging.getLogger("berth.access")
    logger.addHandler(handler)
    try:
        record = {**sample_record, "hue": 0.923456789}
        response = client.post("/v1/predict", json={"records": [record]})
    finally:
        logger.removeHandler(handler)
    assert response.status_code == 200
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert entry["route"] == "/v1/predict"
    assert entry["status"] == 200
    assert entry["request_id"] == response.json()["request_id"]
    assert entry["latency_ms"] >= 0
    assert "0.923456789" not in lines[0]


def _answers(client: TestClient, cases: list[tuple[str, bytes, dict[str, str]]]) -> list[Any]:
    answers = []
    for query, body, headers in cases:
        response = client.post(
            f"/v1/predict{query}", content=body, headers={**headers, "X-Request-ID": "same"}
        )
        answers.append((response.status_code, response.headers["content-type"], response.text))
    return answers


def test_fast_path_answers_like_the_reference_path(
    client: TestClient,
    manifest: dict[str, Any],
    sample_record: dict[str, float],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Usual requests take the fast path (one pydantic-core pass over the raw body, no FastAPI
    dependencies); with it turned off, FastAPI's handler gives byte-identical answers."""
    from app.api.routes import predict

    records = [pair["input"] for pair in manifest["golden"]][:3]
    columns = {name: [r[name] for r in records] for name in records[0]}
    as_json = {"content-type": "application/json"}
    cases = [
        ("", json.dumps({"records": [sample_record]}).encode(), as_json),
        ("?probabilities=true", json.dumps({"records": records}).encode(), as_json),
        ("?probabilities=1", json.dumps({"columns": columns}).encode(), as_json),
        ("?other=x", json.dumps({"records": records, "probabilities": True}).encode(), as_json),
        ("", json.dumps({"records": records}).encode(), {"content-type": "application/x+json"}),
        ("?probabilities=maybe", json.dumps({"records": records}).encode(), as_json),
        ("", json.dumps({"records": [sample_record] * 6}).encode(), as_json),
        ("", json.dumps({"records": [{**sample_record, "hue": "x"}]}).encode(), as_json),
        ("", b"not json", as_json),
        ("", json.dumps({"records": [sample_record]}).encode(), {"content-type": "text/plain"}),
    ]
    taken: list[bool] = []
    real = predict.fast_input

    def spy(*args: Any) -> Any:
        found = real(*args)
        taken.append(found is not None)
        return found

    monkeypatch.setattr(predict, "fast_input", spy)
    fast = _answers(client, cases)
    assert taken == [True] * 5 + [False] * 5
    monkeypatch.setattr(predict, "fast_input", lambda *args: None)
    assert _answers(client, cases) == fast
    assert [status for status, _, _ in fast] == [200] * 5 + [422] * 5


def test_access_log_does_no_work_when_info_is_filtered_out(
    client: TestClient, sample_record: dict[str, float], monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.core import middleware

    built: list[dict[str, Any]] = []
    monkeypatch.setattr(middleware, "log_request", built.append)
    logger = logging.getLogger("berth")
    level = logger.level
    try:
        logger.setLevel(logging.WARNING)
        assert client.post("/v1/predict", json={"records": [sample_record]}).status_code == 200
        assert built == []
        logger.setLevel(logging.INFO)
        assert client.post("/v1/predict", json={"records": [sample_record]}).status_code == 200
        assert [fields["status"] for fields in built] == [200]
    finally:
        logger.setLevel(level)


def test_openapi_still_describes_the_predict_route_fully(client: TestClient) -> None:
    """The fast path serves most requests, but the OpenAPI operation is the route's."""
    operation = client.get("/openapi.json").json()["paths"]["/v1/predict"]["post"]
    body = operation["requestBody"]
    assert body["required"] is True
    assert body["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/PredictRequest"
    }
    ok = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/PredictResponse"}
    assert [p["name"] for p in operation["parameters"]] == ["probabilities"]
    assert operation["security"] == [{"APIKeyHeader": []}, {"HTTPBearer": []}]
