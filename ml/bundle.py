"""Write a model bundle directory atomically: ``<target>/{model.onnx|model.skops, manifest.json}``.

The bundle is assembled in a temporary directory next to the target (same filesystem) and
renamed into place, so a reader sees the old bundle, no bundle, or the complete new one, never a
half-written one. The format is described in ``docs/model-bundle.md`` and validated by
``app.services.manifest.Manifest``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from app.services.manifest import (
    MANIFEST_FILENAME,
    FeatureSpec,
    GoldenPair,
    Manifest,
    ModelFormat,
    OutputSpec,
    Reference,
    compute_version,
    sha256_hex,
)

# Placeholders written by export (deterministic output); ml.stamp sets the real values at
# release/deploy time. Neither is covered by the version hash or the file hashes.
UNSTAMPED_REV = "unreleased"
UNSTAMPED_TIME = datetime(1970, 1, 1, tzinfo=timezone.utc)


def build_manifest(
    *,
    name: str,
    fmt: ModelFormat,
    model_file: str,
    model: bytes,
    features: list[FeatureSpec],
    output: OutputSpec,
    metrics: dict[str, float],
    golden: list[GoldenPair],
    reference: Reference | None,
    git_rev: str,
    created_at: datetime,
) -> Manifest:
    files = {model_file: sha256_hex(model)}
    return Manifest(
        name=name,
        version=compute_version(fmt, files, features, output),
        format=fmt,
        model_file=model_file,
        files=files,
        features=features,
        output=output,
        metrics=metrics,
        golden=golden,
        reference=reference,
        git_rev=git_rev,
        created_at=created_at,
    )


def manifest_bytes(manifest: Manifest) -> bytes:
    """The manifest as written: stable key order, no null fields."""
    return (manifest.model_dump_json(indent=2, exclude_none=True) + "\n").encode()


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
        _write_synced(staging / MANIFEST_FILENAME, manifest_bytes(manifest))
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
