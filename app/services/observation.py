"""What a worker notes about each predict request once it has an answer: the score histogram,
the drift windows and PSI gauges, the sampled prediction log, and the model version for the
access log line. Called by ``Predictor.predict`` in the request's thread; never raises.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence

from app.core import metrics
from app.core.config import Settings
from app.core.middleware import request_context
from app.services.drift import DriftMonitor, DriftReport
from app.services.manifest import ClassificationOutput, Manifest
from app.services.predlog import PredictionLog
from app.services.probabilities import Probabilities

log = logging.getLogger("berth.observation")
FAILURE_LOG_SECONDS = 60.0


class Observer:
    def __init__(
        self,
        drift_window: int = 1000,
        drift_interval_seconds: float = 10.0,
        prediction_log: PredictionLog | None = None,
    ) -> None:
        self.drift_window = drift_window
        self.drift_interval_seconds = drift_interval_seconds
        self.prediction_log = prediction_log
        self._monitor: DriftMonitor | None = None
        self._monitor_version: str | None = None
        self._lock = threading.Lock()
        self._last_failure_log = -FAILURE_LOG_SECONDS

    @classmethod
    def from_settings(cls, settings: Settings) -> Observer:
        prediction_log = None
        if settings.prediction_log_path is not None:
            prediction_log = PredictionLog(
                settings.prediction_log_path,
                settings.prediction_log_sample_rate,
                settings.prediction_log_max_bytes,
                settings.prediction_log_backups,
            )
        return cls(settings.drift_window, settings.drift_interval_seconds, prediction_log)

    def close(self) -> None:
        if self.prediction_log is not None:
            self.prediction_log.close()

    def monitor(self, manifest: Manifest) -> DriftMonitor | None:
        """The drift monitor of this model version (a new version starts empty windows)."""
        if manifest.reference is None:
            return None
        if self._monitor_version != manifest.version:
            with self._lock:
                if self._monitor_version != manifest.version:
                    self._monitor = DriftMonitor(
                        manifest.reference,
                        manifest.feature_names,
                        window=self.drift_window,
                        interval_seconds=self.drift_interval_seconds,
                    )
                    self._monitor_version = manifest.version
        return self._monitor

    def observe(
        self,
        manifest: Manifest,
        records: Sequence[Mapping[str, object]],
        predictions: Sequence[str] | Sequence[float],
        probabilities: Sequence[Mapping[str, float]] | None,
        fallback_reason: str | None,
    ) -> None:
        context = request_context()
        context["model_version"] = manifest.version
        if fallback_reason is not None:
            context["fallback_reason"] = fallback_reason
        try:
            self._observe(manifest, records, predictions, probabilities, fallback_reason)
        except Exception:  # observation must never cost the caller its answer
            now = time.monotonic()
            if now - self._last_failure_log >= FAILURE_LOG_SECONDS:  # no log flood
                self._last_failure_log = now
                log.exception(
                    "observing a prediction failed (logged at most once a minute)",
                    extra={"model_version": manifest.version},
                )

    def _observe(
        self,
        manifest: Manifest,
        records: Sequence[Mapping[str, object]],
        predictions: Sequence[str] | Sequence[float],
        probabilities: Sequence[Mapping[str, float]] | None,
        fallback_reason: str | None,
    ) -> None:
        from_model = fallback_reason is None
        if from_model:
            if isinstance(manifest.output, ClassificationOutput):
                if isinstance(probabilities, Probabilities):
                    metrics.pending.observe_many(metrics.PREDICTION_SCORE, probabilities.top())
                elif probabilities is not None:
                    metrics.pending.observe_many(
                        metrics.PREDICTION_SCORE, [max(p.values()) for p in probabilities]
                    )
            else:
                metrics.pending.observe_many(metrics.PREDICTION_SCORE, predictions)  # type: ignore[arg-type]
        monitor = self.monitor(manifest)
        if monitor is not None:
            report = monitor.record(records, predictions if from_model else None)
            if report is not None:
                publish(report)
        if self.prediction_log is not None and self.prediction_log.sampled():
            self.prediction_log.write(
                request_id=context_request_id(),
                model_version=manifest.version,
                records=records,
                predictions=predictions,
                probabilities=probabilities,
                fallback_reason=fallback_reason,
            )


def context_request_id() -> str | None:
    request_id = request_context().get("request_id")
    return str(request_id) if request_id is not None else None


def publish(report: DriftReport) -> None:
    """Set this worker's drift gauges from ``report``."""
    for feature, value in report.feature_psi.items():
        metrics.FEATURE_PSI.labels(feature).set(value)
    if report.prediction_psi is not None:
        metrics.PREDICTION_PSI.set(report.prediction_psi)
    metrics.DRIFT_WINDOW_RECORDS.set(report.records)
