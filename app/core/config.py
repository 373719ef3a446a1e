"""Service settings. The only place environment variables are read.

Every field maps to ``BERTH_<FIELD>`` (e.g. ``BERTH_MODEL_DIR``); on a server Ansible renders
them into ``/etc/berth/berth.env``, which systemd passes to Gunicorn.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.services.fallback import DefaultAnswer

ENV_PREFIX = "BERTH_"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_ignore_empty=True, extra="ignore")

    model_dir: Path = Field(
        default=Path("/srv/berth/models/current"),
        description="Bundle directory to serve (model file + manifest.json); usually a symlink "
        "that deploys repoint atomically.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        default="INFO", description="Lowest level of log records written (any letter case)."
    )
    log_format: Literal["json", "text"] = Field(
        default="json",
        description="'json': one JSON object per line (servers); 'text': human-readable.",
    )
    inference_threads: int = Field(
        default=1,
        ge=1,
        le=64,
        description="onnxruntime intra-op threads per worker process. Keep 1 with several "
        "Gunicorn workers, or workers fight over cores.",
    )
    max_records: int = Field(
        default=1000, ge=1, description="Largest number of records in one predict request."
    )

    latency_budget_ms: float = Field(
        default=100,
        gt=0,
        le=60_000,
        description="Deadline of one predict request's inference, in milliseconds. Past it the "
        "answer comes from the fallback cache or the default answer, flagged as a fallback.",
    )
    inference_pool_threads: int = Field(
        default=2,
        ge=1,
        le=64,
        description="Threads per worker that run inference (a bounded pool, off the event loop). "
        "Requests beyond them wait in a queue, and fall back if their budget runs out there.",
    )
    fallback_cache_size: int = Field(
        default=10_000,
        ge=0,
        description="Records whose last answer each worker keeps for fallbacks (LRU); 0 keeps "
        "none. Keys are hashes of model version and record, never raw feature values.",
    )
    fallback_default: DefaultAnswer | None = Field(
        default=None,
        description='Answer for records with no cached answer, as JSON, e.g. {"prediction": '
        '"class_0"} or {"prediction": 0.5}; optional "probabilities": {"class": p, ...}. '
        "Unset: such requests get 503 when the model times out or fails.",
    )
    model_retry_seconds: float = Field(
        default=5,
        ge=0,
        description="While a worker has no model, /ready and /v1/* try loading the bundle again "
        "at most this often (seconds), and at once when the bundle path's target changed.",
    )

    # Observability (docs/observability.md).
    drift_window: int = Field(
        default=1000,
        ge=10,
        le=1_000_000,
        description="Records per worker in the sliding window the drift PSI is computed over.",
    )
    drift_interval_seconds: float = Field(
        default=10,
        ge=0,
        description="Least time between two PSI computations of a worker (seconds).",
    )
    prediction_log_path: Path | None = Field(
        default=None,
        description="Sampled prediction log (JSON lines with feature values, for audits), e.g. "
        "/var/log/berth/predictions.jsonl. Unset: no prediction log.",
    )
    prediction_log_sample_rate: float = Field(
        default=0.01,
        ge=0,
        le=1,
        description="Share of predict requests written to the prediction log (0 to 1).",
    )
    prediction_log_max_bytes: int = Field(
        default=50_000_000, ge=1000, description="Size at which the prediction log is rotated."
    )
    prediction_log_backups: int = Field(
        default=5, ge=0, le=1000, description="Rotated prediction log files kept."
    )

    range_margin: float | None = Field(
        default=0.1,
        ge=0,
        description="Tolerance of the range check: numeric features accept values up to this "
        "fraction of their training range (manifest min..max) beyond it on either side, e.g. "
        "0.1 on a 10..20 feature accepts 9..21. Unset (empty) or 'none': no range check.",
    )
    max_body_bytes: int = Field(
        default=1_048_576,
        ge=1024,
        description="Largest request body accepted, in bytes; larger ones get 413 before they "
        "are parsed (nginx has its own limit in front).",
    )
    api_keys_file: Path | None = Field(
        default=Path("/etc/berth/api-keys"),
        description="File of hashed API keys, one 'NAME SHA256 [SCOPES]' per line (python -m "
        "app.keys new NAME). Re-read when it changes, without a restart. Missing or without "
        "keys: the API is open (a warning is logged).",
    )
    cache_url: str | None = Field(
        default=None,
        description="Redis URL of a fallback cache shared by all workers, e.g. "
        "redis://127.0.0.1:6379/0. Unset: each worker keeps its own in-process LRU.",
    )
    cache_ttl_seconds: int = Field(
        default=86_400,
        ge=1,
        description="How long answers stay in the Redis fallback cache, in seconds.",
    )

    @field_validator("range_margin", mode="before")
    @classmethod
    def _none_margin(cls, value: object) -> object:
        """``none`` / ``off`` turn the range check off."""
        return None if isinstance(value, str) and value.lower() in ("none", "off") else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_log_level(cls, value: object) -> object:
        """Accept `info` as well as `INFO`: gunicorn and Ansible spell levels in lower case."""
        return value.upper() if isinstance(value, str) else value
