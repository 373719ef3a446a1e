"""Service settings. The only place environment variables are read.

Every field maps to ``BERTH_<FIELD>`` (e.g. ``BERTH_MODEL_DIR``); on a server Ansible renders
them into ``/etc/berth/berth.env``, which systemd passes to Gunicorn.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
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
    log_flush_ms: float = Field(
        default=100,
        ge=0,
        le=10_000,
        description="Log lines (one access line per request) are written in batches, each at "
        "most this late; WARNING and worse are written at once with the lines before them. "
        "0: one write per line.",
    )
    metrics_flush_ms: float = Field(
        default=1000,
        ge=0,
        le=60_000,
        description="With several workers (multiprocess metrics), per-request metric updates "
        "are added up in the worker and written at most this late (and before the worker "
        "answers a scrape). 0: one write per update.",
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
        "One call runs at a time; the others are spares for when a call takes longer than a "
        "tenth of the budget. Requests wait in a queue, and fall back if their budget runs out "
        "there.",
    )
    fallback_cache_size: int = Field(
        default=10_000,
        ge=0,
        description="Records whose last answer each worker keeps for fallbacks (LRU); 0 keeps "
        "none. Keys are the model version and the record's values, in the worker's memory only "
        "(a shared cache gets their sha256).",
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


class SchedulerSettings(BaseSettings):
    """Settings of the berth-scheduler process (``python -m app.jobs``), same ``BERTH_`` prefix.

    On a server the scheduler role renders them into ``/etc/berth/scheduler.env``. The API reads
    only ``batch_state_dir`` from here (to serve ``GET /v1/batch/latest``).
    """

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_ignore_empty=True, extra="ignore")

    model_dir: Path = Field(
        default=Path("/srv/berth/models/current"),
        description="Bundle that batch scoring uses (the model the API serves).",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        default="INFO", description="Lowest level of log records written."
    )
    log_format: Literal["json", "text"] = Field(default="json", description="Log line format.")

    scheduler_jobstore: Path = Field(
        default=Path("/var/lib/berth/scheduler.sqlite"),
        description="SQLite file of APScheduler's job store: next run times survive a restart, "
        "so runs missed while the service was down are caught up (once, coalesced).",
    )
    scheduler_timezone: str = Field(default="UTC", description="Time zone of the cron entries.")
    scheduler_misfire_grace_seconds: int = Field(
        default=1800,
        ge=1,
        description="A run missed by at most this many seconds (service down, busy) still runs; "
        "older missed runs are skipped.",
    )
    scheduler_metrics_host: str = Field(
        default="127.0.0.1", description="Address of the scheduler's Prometheus endpoint."
    )
    scheduler_metrics_port: int = Field(
        default=9181, ge=0, le=65535, description="Port of the Prometheus endpoint; 0 = none."
    )

    cleanup_schedule: str = Field(
        default="17 3 * * *", description="Cron entry (5 fields) of the cleanup jobs."
    )
    cleanup_disk_check_schedule: str = Field(
        default="*/10 * * * *", description="Cron entry of the disk-pressure check."
    )
    cleanup_disk_threshold_percent: float = Field(
        default=85,
        gt=0,
        le=100,
        description="When a cleanup root's file system is fuller than this, every cleanup job "
        "runs at once instead of waiting for its schedule.",
    )
    cleanup_dry_run: bool = Field(
        default=False, description="Scheduled cleanups only log what they would remove."
    )
    cleanup_log_dirs: list[Path] = Field(
        default=[Path("/var/log/berth"), Path("/var/log/nginx")],
        description="Log directories whose rotated files are cleaned (live logs never).",
    )
    cleanup_log_max_age_days: float = Field(
        default=14, gt=0, description="Rotated log files older than this are removed."
    )
    cleanup_log_max_bytes: int = Field(
        default=500_000_000,
        ge=0,
        description="Size budget of each log directory: oldest rotated files go first.",
    )
    cleanup_journal_max_size: str = Field(
        default="",
        pattern=r"^([0-9]+[KMG]?)?$",
        description="`journalctl --vacuum-size` cap such as 500M; empty leaves journald alone.",
    )
    cleanup_models_root: Path = Field(
        default=Path("/srv/berth/models"), description="Model versions directory."
    )
    cleanup_models_keep: int = Field(
        default=3,
        ge=1,
        description="Newest model versions kept, besides the active one and the rollback target.",
    )
    cleanup_deploys_log: Path = Field(
        default=Path("/var/lib/berth/deploys.jsonl"),
        description="Deploy records (JSON lines with 'version'); the last version before the "
        "active one is the rollback target.",
    )
    cleanup_releases_root: Path = Field(
        default=Path("/srv/berth/releases"), description="Application releases directory."
    )
    cleanup_releases_current: Path = Field(
        default=Path("/srv/berth/current"), description="Link to the active release."
    )
    cleanup_releases_keep: int = Field(
        default=3, ge=1, description="Newest releases kept, besides the active one."
    )
    cleanup_leftover_grace_hours: float = Field(
        default=24,
        ge=0,
        description="Temporary bundle directories (.tmp-*) and unfinished releases older than "
        "this are leftovers of failed deploys and removed.",
    )
    cleanup_batch_max_age_days: float = Field(
        default=30,
        gt=0,
        description="Batch result files, and incoming files already scored, older than this are "
        "removed (never the results that latest.json points at, never unscored files).",
    )
    cleanup_images_enabled: bool = Field(
        default=True,
        description="Prune dangling container images when docker or podman is installed.",
    )

    batch_schedule: str = Field(default="*/5 * * * *", description="Cron entry of batch scoring.")
    batch_source: Literal["directory", "postgres"] = Field(
        default="directory", description="Where records come from."
    )
    batch_incoming_dir: Path = Field(
        default=Path("/var/lib/berth/batch/incoming"),
        description="Directory source: CSV/Parquet files, one header row; move files in "
        "with a rename (a name starting with '.' is ignored while it is written).",
    )
    batch_settle_seconds: float = Field(
        default=2, ge=0, description="Files changed more recently than this wait for next run."
    )
    batch_max_files: int = Field(default=100, ge=1, description="Files read by one run at most.")
    batch_postgres_dsn: SecretStr | None = Field(
        default=None, description="PostgreSQL source: libpq connection string (a secret)."
    )
    batch_postgres_query: str = Field(
        default="",
        description="PostgreSQL source: a SELECT returning the feature columns and the "
        "watermark column, e.g. 'SELECT id, a, b FROM incoming'.",
    )
    batch_postgres_watermark_column: str = Field(
        default="id",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Column that only grows as records arrive (serial id or insert time).",
    )
    batch_max_rows: int = Field(
        default=100_000, ge=1, description="PostgreSQL source: rows read by one run at most."
    )
    batch_chunk_rows: int = Field(default=5000, ge=1, description="Rows scored per model call.")
    batch_state_dir: Path = Field(
        default=Path("/var/lib/berth/batch"),
        description="Watermark and the pointer to the last good results (latest.json).",
    )
    batch_output_dir: Path = Field(
        default=Path("/var/lib/berth/batch/results"),
        description="Local directory the results are written to (and served from).",
    )
    batch_output_local: bool = Field(
        default=True, description="Write results to batch_output_dir (else only to S3)."
    )
    batch_output_format: Literal["csv", "parquet"] = Field(
        default="csv", description="File format of the results."
    )
    batch_s3_bucket: str = Field(default="", description="S3 bucket for results; empty: none.")
    batch_s3_prefix: str = Field(default="berth/batch/", description="Key prefix in the bucket.")
    batch_s3_endpoint_url: str = Field(
        default="", description="S3 endpoint for non-AWS stores (MinIO...); empty: AWS."
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_log_level(cls, value: object) -> object:
        """`info` as well as `INFO`: the API's berth.env spells levels in lower case, and the
        API reads these settings too (for the batch state directory)."""
        return value.upper() if isinstance(value, str) else value
