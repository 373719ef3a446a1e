"""Unexpected errors: a JSON 500 that names the request, the same on both predict paths and
on any other route, with the error in the log and the request in the access log."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.api.routes import predict
from app.core.config import Settings
from app.main import create_app

INTERNAL = "internal error; see the server log"


@pytest.fixture(scope="module")
def quiet_client(bundle_dir: Path) -> Iterator[TestClient]:
    """A client that answers server errors as a server does, instead of raising them here."""
    with TestClient(
        create_app(Settings(model_dir=bundle_dir)), raise_server_exceptions=False
    ) as client:
        yield client


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def logged() -> Iterator[list[logging.LogRecord]]:
    handler = Records()
    logger = logging.getLogger("berth")
    logger.addHandler(handler)
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)


def _boom(*args: Any) -> Any:
    raise RuntimeError("bug in the predict path")


def test_unexpected_error_while_reading_the_request_is_a_json_500(
    quiet_client: TestClient,
    sample_record: dict[str, float],
    monkeypatch: pytest.MonkeyPatch,
    logged: list[logging.LogRecord],
) -> None:
    monkeypatch.setattr(predict, "fast_input", _boom)
    response = quiet_client.post(
        "/v1/predict", json={"records": [sample_record]}, headers={"X-Request-ID": "err-3"}
    )
    assert response.status_code == 500
    assert response.json() == {"detail": INTERNAL, "request_id": "err-3"}
    assert response.headers["x-request-id"] == "err-3"
    assert [r.getMessage() for r in logged if r.name == "berth.errors"] == ["unhandled error"]


@pytest.mark.parametrize("path", ["fast", "reference"])
def test_unexpected_predict_error_is_a_json_500(
    quiet_client: TestClient,
    sample_record: dict[str, float],
    monkeypatch: pytest.MonkeyPatch,
    logged: list[logging.LogRecord],
    path: str,
) -> None:
    taken: list[bool] = []
    real = predict.fast_input

    def spy(*args: Any) -> Any:
        found = real(*args) if path == "fast" else None
        taken.append(found is not None)
        return found

    monkeypatch.setattr(predict, "fast_input", spy)
    monkeypatch.setattr(predict, "answer_body", _boom)
    response = quiet_client.post(
        "/v1/predict", json={"records": [sample_record]}, headers={"X-Request-ID": "err-1"}
    )
    assert taken == [path == "fast"]
    assert response.status_code == 500
    assert response.json() == {"detail": INTERNAL, "request_id": "err-1"}
    assert response.headers["x-request-id"] == "err-1"
    errors = [r for r in logged if r.name == "berth.errors"]
    assert [r.getMessage() for r in errors] == ["unhandled error"]
    assert errors[0].exc_info is not None and "bug in the predict path" in str(
        errors[0].exc_info[1]
    )
    assert vars(errors[0])["request_id"] == "err-1"
    access = [vars(r) for r in logged if r.name == "berth.access"]
    assert [(a["request_id"], a["route"], a["status"]) for a in access] == [
        ("err-1", "/v1/predict", 500)
    ]


def test_unexpected_error_on_another_route_is_a_json_500(
    quiet_client: TestClient, monkeypatch: pytest.MonkeyPatch, logged: list[logging.LogRecord]
) -> None:
    from app.api.routes import models

    monkeypatch.setattr(models, "ModelSummary", _boom)
    response = quiet_client.get("/v1/model", headers={"X-Request-ID": "err-2"})
    assert response.status_code == 500
    assert response.json() == {"detail": INTERNAL, "request_id": "err-2"}
    assert response.headers["x-request-id"] == "err-2"
    access = [vars(r) for r in logged if r.name == "berth.access"]
    assert [(a["request_id"], a["status"]) for a in access] == [("err-2", 500)]
