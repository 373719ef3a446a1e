from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from app.core.config import Settings


def test_defaults_point_at_the_server_layout(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("BERTH_MODEL_DIR", "BERTH_LOG_LEVEL", "BERTH_LOG_FORMAT"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert settings.model_dir == Path("/srv/berth/models/current")
    assert settings.log_format == "json"
    assert settings.inference_threads == 1


def test_environment_with_prefix_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BERTH_MODEL_DIR", "/tmp/some-bundle")
    monkeypatch.setenv("BERTH_LOG_FORMAT", "text")
    monkeypatch.setenv("MODEL_DIR", "/not/this/one")
    settings = Settings()
    assert settings.model_dir == Path("/tmp/some-bundle")
    assert settings.log_format == "text"


def test_invalid_value_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BERTH_LOG_FORMAT", "xml")
    with pytest.raises(ValidationError, match="log_format"):
        Settings()


def test_every_field_is_documented() -> None:
    assert all(field.description for field in Settings.model_fields.values())


def test_log_level_accepts_lower_case_as_ansible_writes_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BERTH_LOG_LEVEL", "info")
    assert Settings().log_level == "INFO"


def test_unknown_log_level_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BERTH_LOG_LEVEL", "loud")
    with pytest.raises(ValidationError, match="log_level"):
        Settings()


def test_fallback_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BERTH_LATENCY_BUDGET_MS", "25")
    monkeypatch.setenv("BERTH_FALLBACK_CACHE_SIZE", "7")
    monkeypatch.setenv("BERTH_FALLBACK_DEFAULT", '{"prediction": "class_0"}')
    settings = Settings()
    assert settings.latency_budget_ms == 25
    assert settings.fallback_cache_size == 7
    assert settings.fallback_default is not None
    assert settings.fallback_default.prediction == "class_0"


def test_fallback_default_is_optional_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().fallback_default is None
    assert Settings().latency_budget_ms == 100
    monkeypatch.setenv("BERTH_FALLBACK_DEFAULT", '{"answer": 1}')
    with pytest.raises(ValidationError):
        Settings()
