"""Load, verify and serve one model bundle.

Order matters: refuse pickle files, check every file's sha256 against the manifest, only then
parse the model (from the very bytes that were hashed), then replay the golden pairs. A bundle
that fails any step is not served; the error says what is wrong and what to do.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, TypeAdapter, ValidationError

from app.core import metrics
from app.schemas import build_record_model
from app.services.manifest import (
    MANIFEST_FILENAME,
    PICKLE_SUFFIXES,
    ClassificationOutput,
    GoldenOutput,
    Manifest,
    compute_version,
    sha256_hex,
)
from app.services.probabilities import Probabilities
from app.services.runtimes import OnnxRuntime, Runtime, RuntimeLoadError, SkopsRuntime

log = logging.getLogger("berth.model")

# Largest difference from a golden output accepted (same model, possibly another CPU).
GOLDEN_TOLERANCE = 1e-5
MAX_MANIFEST_BYTES = 1_000_000
REEXPORT_HINT = "re-export the model with `dvc repro` and deploy the new bundle"


class BundleError(Exception):
    """The bundle cannot be served. Subclasses say which check failed."""


class BundleNotFoundError(BundleError):
    pass


class UnsafeFileError(BundleError):
    pass


class ManifestError(BundleError):
    pass


class IntegrityError(BundleError):
    pass


class ModelLoadError(BundleError):
    pass


class GoldenMismatchError(BundleError):
    pass


@dataclass(frozen=True)
class Prediction:
    """Per record, the prediction, and a classifier's class probabilities (the model's rows;
    ``Probabilities.of`` makes them from ``{class: probability}`` dicts)."""

    predictions: list[str] | list[float]
    probabilities: Probabilities | None


class LoadedModel:
    """A verified bundle, ready to predict. Thread-safe: both runtimes allow concurrent runs."""

    def __init__(self, manifest: Manifest, runtime: Runtime) -> None:
        self.manifest = manifest
        self.record_model: type[BaseModel] = build_record_model(manifest.features)
        self._records_adapter = TypeAdapter(list[self.record_model])  # type: ignore[name-defined]
        self._runtime = runtime

    @property
    def version(self) -> str:
        return self.manifest.version

    def validate_records(self, records: Sequence[object]) -> list[dict[str, float]]:
        """Check raw records against the feature schema; raises pydantic's ``ValidationError``
        with one error per bad field, located as ``(record index, feature name)``."""
        validated = self._records_adapter.validate_python(records)
        # One serializer call for the whole list, not one model_dump per record.
        records_out: list[dict[str, float]] = self._records_adapter.dump_python(
            validated, by_alias=True
        )
        return records_out

    def predict(self, records: Sequence[Mapping[str, float | str]]) -> Prediction:
        """Predict validated records (every feature present, numeric ones finite)."""
        raw = self._runtime.run(records)
        output = self.manifest.output
        if isinstance(output, ClassificationOutput):
            if raw.probabilities is None:
                raise ValueError("the classifier gave no probabilities")
            classes = output.classes
            if raw.probabilities.shape[1:] != (len(classes),):
                raise ValueError(
                    f"the classifier gave {raw.probabilities.shape[1:]} probabilities per "
                    f"record for {len(classes)} classes"
                )
            labels = raw.predictions.tolist()  # str already when the runtime gives text
            if raw.predictions.dtype.kind != "U":
                labels = list(map(str, labels))
            return Prediction(labels, Probabilities(classes, raw.probabilities.tolist()))
        return Prediction(predictions=raw.predictions.tolist(), probabilities=None)


def load_bundle(bundle_dir: Path, threads: int = 1) -> LoadedModel:
    """Verify and load the bundle in ``bundle_dir``; raise a ``BundleError`` if anything is off."""
    bundle_dir = bundle_dir.resolve()
    if not bundle_dir.is_dir():
        raise BundleNotFoundError(f"no model bundle at {bundle_dir}: {REEXPORT_HINT}")
    refuse_unsafe_files(bundle_dir)
    manifest = read_manifest(bundle_dir)
    model_bytes = read_verified_files(bundle_dir, manifest)[manifest.model_file]
    model = LoadedModel(manifest, open_runtime(manifest, model_bytes, threads))
    check_golden(model)
    return model


def refuse_unsafe_files(bundle_dir: Path) -> None:
    for path in sorted(bundle_dir.rglob("*")):
        if path.name.lower().endswith(PICKLE_SUFFIXES):
            raise UnsafeFileError(
                f"refusing bundle {bundle_dir}: it contains {path.name}, a pickle/joblib file. "
                "Loading pickle executes arbitrary code, so Berth never loads it. Export the "
                "model with `dvc repro` instead: it writes ONNX, or skops (a format that is "
                "inspected before loading) when the estimator does not convert to ONNX"
            )


def read_manifest(bundle_dir: Path) -> Manifest:
    path = bundle_dir / MANIFEST_FILENAME
    if not path.is_file() or path.is_symlink():
        raise ManifestError(f"{path} is missing or not a regular file: {REEXPORT_HINT}")
    raw = path.read_bytes()
    if len(raw) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"{path} is larger than {MAX_MANIFEST_BYTES} bytes")
    try:
        manifest = Manifest.model_validate_json(raw)
    except ValidationError as exc:
        raise ManifestError(f"{path} is not a valid manifest: {exc}") from exc
    expected = compute_version(manifest.format, manifest.files, manifest.features, manifest.output)
    if manifest.version != expected:
        raise ManifestError(
            f"{path}: version {manifest.version} does not match its content (expected "
            f"{expected}); the manifest was edited after export: {REEXPORT_HINT}"
        )
    return manifest


def read_verified_files(bundle_dir: Path, manifest: Manifest) -> dict[str, bytes]:
    """Read every listed file once and check its sha256; refuse unlisted files."""
    present = {path.name for path in bundle_dir.iterdir()} - {MANIFEST_FILENAME}
    unexpected = sorted(present - set(manifest.files))
    if unexpected:
        raise IntegrityError(
            f"bundle {bundle_dir} holds files its manifest does not list: {unexpected}"
        )
    contents = {}
    for name, expected in sorted(manifest.files.items()):
        path = bundle_dir / name
        if not path.is_file() or path.is_symlink():
            raise IntegrityError(f"{path} is missing or not a regular file: {REEXPORT_HINT}")
        data = path.read_bytes()
        actual = sha256_hex(data)
        if actual != expected:
            raise IntegrityError(
                f"{path} has sha256 {actual[:12]}..., the manifest says {expected[:12]}...: "
                f"the file is corrupt or was changed after export; {REEXPORT_HINT}"
            )
        contents[name] = data
    return contents


def open_runtime(manifest: Manifest, model_bytes: bytes, threads: int) -> Runtime:
    """The runtime of the manifest's format, or ``ModelLoadError`` with the reason."""
    output = manifest.output
    classes = output.classes if isinstance(output, ClassificationOutput) else None
    try:
        if manifest.format == "skops":
            return SkopsRuntime(model_bytes, manifest.features, classes)
        return OnnxRuntime(model_bytes, manifest.features, threads)
    except RuntimeLoadError as exc:
        raise ModelLoadError(f"{manifest.model_file}: {exc}; {REEXPORT_HINT}") from exc


def check_golden(model: LoadedModel) -> None:
    """Replay the manifest's golden pairs; any difference means this runtime is not the one
    the model was exported and checked with."""
    golden = model.manifest.golden
    try:
        result = model.predict([pair.input for pair in golden])
    except (KeyError, ValueError, RuntimeError) as exc:
        raise GoldenMismatchError(f"the golden inputs cannot be predicted: {exc}") from exc
    for index, pair in enumerate(golden):
        problem = _golden_difference(pair.output, result, index)
        if problem:
            raise GoldenMismatchError(
                f"golden pair {index}: {problem}; the model or runtime differs from the one "
                f"that was exported. {REEXPORT_HINT}"
            )


def _golden_difference(expected: GoldenOutput, result: Prediction, index: int) -> str | None:
    got = result.predictions[index]
    if isinstance(expected.prediction, str) or isinstance(got, str):
        if got != expected.prediction:
            return f"predicted {got!r}, expected {expected.prediction!r}"
    elif abs(got - expected.prediction) > GOLDEN_TOLERANCE * max(1.0, abs(expected.prediction)):
        return f"predicted {got!r}, expected {expected.prediction!r}"
    if expected.probabilities is not None:
        if result.probabilities is None:
            return "model gave no probabilities"
        got_probs = result.probabilities[index]
        for cls, value in expected.probabilities.items():
            if abs(got_probs.get(cls, float("nan")) - value) <= GOLDEN_TOLERANCE:
                continue
            return f"probability of {cls!r} is {got_probs.get(cls)!r}, expected {value!r}"
    return None


class ModelStore:
    """Holds the model a worker serves, or the reason it has none.

    A worker without a model tries again (``retry_if_due``) when the bundle path points at a new
    target, or at most every ``retry_seconds``; a worker with a model keeps it until a reload.
    """

    def __init__(
        self,
        bundle_dir: Path,
        threads: int = 1,
        retry_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bundle_dir = bundle_dir
        self.threads = threads
        self.retry_seconds = retry_seconds
        self.model: LoadedModel | None = None
        self.error: str | None = "model not loaded yet"
        self._clock = clock
        self._last_attempt: float | None = None
        self._last_target: Path | None = None
        self._loading = threading.Lock()

    def _target(self) -> Path:
        return self.bundle_dir.resolve()

    def load(self) -> LoadedModel | None:
        """Load the bundle; on failure keep the previous model (if any) and record the error."""
        self._last_attempt, self._last_target = self._clock(), self._target()
        started = time.perf_counter()
        try:
            model = load_bundle(self.bundle_dir, self.threads)
        except BundleError as exc:
            self.error = str(exc)
            metrics.MODEL_LOAD_FAILURES.inc()
            log.error("model load failed", extra={"error": self.error})
            return None
        self.model, self.error = model, None
        metrics.MODEL_LOAD_DURATION.observe(time.perf_counter() - started)
        metrics.model_loaded(
            model.manifest.name, model.version, model.manifest.created_at.timestamp()
        )
        log.info(
            "model loaded",
            extra={
                "model_name": model.manifest.name,
                "model_version": model.version,
                "load_ms": round((time.perf_counter() - started) * 1000, 1),
            },
        )
        return model

    def retry_if_due(self) -> LoadedModel | None:
        """The model; without one, load again if the target changed or the retry time passed."""
        if self.model is not None:
            return self.model
        due = (
            self._last_attempt is None
            or self._target() != self._last_target
            or self._clock() - self._last_attempt >= self.retry_seconds
        )
        # One loader at a time; other requests answer 503 meanwhile instead of queueing.
        if not due or not self._loading.acquire(blocking=False):
            return None
        try:
            return self.load() if self.model is None else self.model
        finally:
            self._loading.release()
