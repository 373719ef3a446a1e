"""The bundle manifest: the one format shared by the exporter (``ml/``) and the server (``app/``).

Written by ``ml/bundle.py``, read by ``app/services/model_store.py``. Documented in
``docs/model-bundle.md``. Change it deliberately: bump ``manifest_schema`` when a change is not
backwards compatible.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

MANIFEST_FILENAME = "manifest.json"
VERSION_LENGTH = 12
# Formats that execute code when loaded. Never accepted in a bundle.
PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib")

FileName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


FeatureDtype = Literal["float64", "int64", "category"]
ModelFormat = Literal["onnx", "skops"]


class FeatureSpec(_Frozen):
    """One input column, in the order the model expects it.

    Numeric features (``float64``, ``int64``) carry the training range in ``min``/``max``;
    categorical ones (``category``) the accepted values in ``allowed``.
    """

    name: Annotated[str, Field(min_length=1, max_length=128)]
    dtype: FeatureDtype | None = None
    min: float | None = None
    max: float | None = None
    allowed: list[str] | None = None

    @model_validator(mode="after")
    def _fits_dtype(self) -> FeatureSpec:
        if self.dtype == "category":
            if not self.allowed:
                raise ValueError(f"categorical feature {self.name!r} needs 'allowed' values")
            if self.min is not None or self.max is not None:
                raise ValueError(f"categorical feature {self.name!r} has no min/max")
        elif self.allowed is not None:
            raise ValueError(f"numeric feature {self.name!r} may not list 'allowed' values")
        return self

    @model_serializer(mode="wrap")
    def _leave_out_absent(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Absent fields stay absent in JSON (a numeric feature has no ``allowed``), as in
        bundles written before these fields existed."""
        data: dict[str, Any] = handler(self)
        return {key: value for key, value in data.items() if value is not None}

    @property
    def is_categorical(self) -> bool:
        return self.dtype == "category"


class ClassificationOutput(_Frozen):
    kind: Literal["classification"] = "classification"
    classes: Annotated[list[str], Field(min_length=2)]


class RegressionOutput(_Frozen):
    kind: Literal["regression"] = "regression"


OutputSpec = Annotated[ClassificationOutput | RegressionOutput, Field(discriminator="kind")]


class GoldenOutput(_Frozen):
    prediction: str | float
    probabilities: dict[str, float] | None = None


class GoldenPair(_Frozen):
    """An input record and the output the exported model gave for it."""

    input: dict[str, float | str]
    output: GoldenOutput


class NumericHistogram(_Frozen):
    """Counts of training values between consecutive ``edges`` (k+1 non-decreasing edges); a
    value falls in ``[edges[i], edges[i+1])``, the last bin includes its right edge."""

    edges: Annotated[list[float], Field(min_length=2)]
    counts: Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1)]

    @model_validator(mode="after")
    def _shape(self) -> NumericHistogram:
        if len(self.edges) != len(self.counts) + 1:
            raise ValueError("a histogram needs exactly one more edge than counts")
        # Non-decreasing: quantile edges of a column with repeated values may repeat.
        if any(b < a for a, b in zip(self.edges, self.edges[1:], strict=False)):
            raise ValueError("histogram edges must be in increasing order")
        return self


class CategoricalHistogram(_Frozen):
    """Counts of each value (a category, or a class for a classifier's predictions)."""

    values: Annotated[list[str], Field(min_length=1)]
    counts: Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1)]

    @model_validator(mode="after")
    def _shape(self) -> CategoricalHistogram:
        if len(self.values) != len(self.counts):
            raise ValueError("a categorical histogram needs one count per value")
        if len(set(self.values)) != len(self.values):
            raise ValueError("histogram values must be unique")
        return self


Histogram = NumericHistogram | CategoricalHistogram


class Reference(_Frozen):
    """Training-time distributions the server compares live traffic with (drift)."""

    features: dict[str, Histogram]
    predictions: Histogram


class Manifest(_Frozen):
    """Everything the server needs to verify and serve a bundle, and nothing it has to execute."""

    manifest_schema: Literal[1] = 1
    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")]
    version: Annotated[str, Field(pattern=rf"^[0-9a-f]{{{VERSION_LENGTH}}}$")]
    format: ModelFormat
    model_file: FileName
    files: dict[FileName, Sha256]
    features: Annotated[list[FeatureSpec], Field(min_length=1)]
    output: OutputSpec
    metrics: dict[str, float]
    golden: Annotated[list[GoldenPair], Field(min_length=1)]
    git_rev: str
    created_at: datetime
    # Not part of the version hash: the same model with a new reference is the same model.
    reference: Reference | None = None

    @field_validator("features")
    @classmethod
    def _unique_feature_names(cls, features: list[FeatureSpec]) -> list[FeatureSpec]:
        names = [feature.name for feature in features]
        if len(set(names)) != len(names):
            raise ValueError("feature names must be unique")
        return features

    @field_validator("files")
    @classmethod
    def _no_manifest_or_pickle(cls, files: dict[str, str]) -> dict[str, str]:
        for name in files:
            if name == MANIFEST_FILENAME or name.lower().endswith(PICKLE_SUFFIXES):
                raise ValueError(f"file {name!r} may not be listed in a bundle")
        return files

    @model_validator(mode="after")
    def _model_file_is_listed(self) -> Manifest:
        if self.model_file not in self.files:
            raise ValueError(f"model_file {self.model_file!r} is not listed in files")
        return self

    @model_validator(mode="after")
    def _model_file_fits_format(self) -> Manifest:
        suffix = f".{self.format}"
        if not self.model_file.endswith(suffix):
            raise ValueError(f"a {self.format} bundle's model_file must end with {suffix}")
        return self

    @property
    def feature_names(self) -> list[str]:
        return [feature.name for feature in self.features]


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def compute_version(
    fmt: str, files: dict[str, str], features: list[FeatureSpec], output: OutputSpec
) -> str:
    """Content hash of the model files and the schema; no timestamps, no git revision.

    The same model with the same schema always gets the same version, so re-exporting or
    re-deploying an unchanged model is a no-op.
    """
    content = {
        "format": fmt,
        "files": dict(sorted(files.items())),
        "features": [feature.model_dump(mode="json", exclude_none=True) for feature in features],
        "output": output.model_dump(mode="json"),
    }
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return sha256_hex(canonical.encode("utf-8"))[:VERSION_LENGTH]
