"""Load one section of ``params.yaml`` into a typed, validated model."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from ml.stage import StageError

SectionT = TypeVar("SectionT", bound=BaseModel)


class ParamsError(StageError):
    """``params.yaml`` is missing, malformed, or a section does not validate."""


def load_section(path: Path, section: str, model: type[SectionT]) -> SectionT:
    """Read ``params.yaml`` at ``path`` and validate its ``section`` with ``model``."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ParamsError(f"cannot read {path}: {exc}") from exc
    if not isinstance(document, dict) or section not in document:
        raise ParamsError(f"{path} has no '{section}' section")
    try:
        return model.model_validate(document[section])
    except ValidationError as exc:
        raise ParamsError(f"{path} section '{section}' is invalid:\n{exc}") from exc
