"""Write a model bundle directory atomically: ``<target>/{model.onnx, manifest.json}``.

The bundle is assembled in a temporary directory next to the target (same filesystem) and
renamed into place, so a reader sees the old bundle, no bundle, or the complete new one, never a
half-written one. The format is described in ``docs/model-bundle.md`` and validated by
``app.services.manifest.Manifest``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from datetime import datetime
from pathlib import Path

from app.services.manifest import (
    MANIFEST_FILENAME,
    FeatureSpec,
    GoldenPair,
    Manifest,
    OutputSpec,
    compute_version,
    sha256_hex,
)

MODEL_FILENAME = "model.onnx"
# Paths whose uncommitted changes make a bundle "dirty": they decide what the model is.
TRAINING_PATHS = ("ml", "params.yaml", "dvc.yaml")


def build_manifest(
    *,
    name: str,
    model: bytes,
    features: list[FeatureSpec],
    output: OutputSpec,
    metrics: dict[str, float],
    golden: list[GoldenPair],
    git_rev: str,
    created_at: datetime,
) -> Manifest:
    files = {MODEL_FILENAME: sha256_hex(model)}
    return Manifest(
        name=name,
        version=compute_version("onnx", files, features, output),
        format="onnx",
        model_file=MODEL_FILENAME,
        files=files,
        features=features,
        output=output,
        metrics=metrics,
        golden=golden,
        git_rev=git_rev,
        created_at=created_at,
    )


def git_revision(root: Path) -> str:
    """HEAD of the repository at ``root``, suffixed ``-dirty`` if training inputs have changes."""
    try:
        rev = _git(root, "rev-parse", "HEAD")
        dirty = _git(root, "status", "--porcelain", "--", *TRAINING_PATHS)
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{rev}-dirty" if dirty else rev


def _git(root: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", *args], cwd=root, capture_output=True, text=True, check=True, timeout=30
    )
    return result.stdout.strip()


def write_bundle(target: Path, files: dict[str, bytes], manifest: Manifest) -> Path:
    """Write ``files`` and ``manifest.json`` to ``target``, replacing an existing bundle."""
    if set(files) != set(manifest.files):
        raise ValueError("files to write do not match the manifest's file list")
    for name, data in files.items():
        if sha256_hex(data) != manifest.files[name]:
            raise ValueError(f"{name} does not match its sha256 in the manifest")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        staging.chmod(0o755)  # mkdtemp makes it private; the server's user must read it
        for name, data in files.items():
            _write_synced(staging / name, data)
        _write_synced(staging / MANIFEST_FILENAME, manifest.model_dump_json(indent=2).encode())
        _fsync_dir(staging)
        _replace_dir(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _replace_dir(new: Path, target: Path) -> None:
    """Rename ``new`` to ``target``; an existing ``target`` is moved aside first, then deleted."""
    old: Path | None = None
    if target.exists() or target.is_symlink():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        os.rename(target, old / "bundle")
    try:
        os.rename(new, target)
    except OSError:
        if old is not None:
            os.rename(old / "bundle", target)
        raise
    finally:
        _fsync_dir(target.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def _write_synced(path: Path, data: bytes) -> None:
    with path.open("xb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
