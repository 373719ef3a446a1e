"""List released model versions: ``python -m ml.versions [--pattern 'model-v*'] [--json]``.

A released version is a git tag whose commit has the ``dvc.lock`` of the run that produced it.
For each tag (newest version first) this reads, at that tag:

- ``dvc.lock``: the path and DVC hash of the ``export`` stage's output (the bundle directory);
- ``<bundle>/manifest.json`` and the ``metrics:`` files of ``dvc.yaml``, through DVC: from the
  local cache, or fetched from the default remote when the cache lacks them.

A tag whose data cannot be read is still listed, with the reason. See ``docs/model-versions.md``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ml.stage import StageError

DEFAULT_PATTERN = "model-v*"
EXPORT_STAGE = "export"
MANIFEST = "manifest.json"


class VersionsError(StageError):
    """The versions cannot be listed at all (not a git repository, git failing)."""


@dataclass
class ModelVersion:
    tag: str
    commit: str
    date: str
    bundle_path: str | None = None
    dvc_hash: str | None = None
    name: str | None = None
    version: str | None = None
    created_at: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def _git(root: Path, *args: str) -> str:
    try:
        result = subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, check=True, timeout=60
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", "") or exc
        raise VersionsError(f"git {' '.join(args)} failed in {root}: {detail}") from exc
    return result.stdout


def list_tags(root: Path, pattern: str) -> list[str]:
    """Tags matching ``pattern``, highest version first (``model-v10`` before ``model-v9``)."""
    out = _git(root, "tag", "--list", pattern, "--sort=-v:refname")
    return [line for line in out.splitlines() if line]


def _show(root: Path, rev: str, path: str) -> str | None:
    try:
        return _git(root, "show", f"{rev}:{path}")
    except VersionsError:
        return None


def _yaml_at(root: Path, rev: str, path: str) -> dict[str, Any] | None:
    text = _show(root, rev, path)
    if text is None:
        return None
    document = yaml.safe_load(text)
    return document if isinstance(document, dict) else None


def bundle_out(lock: dict[str, Any], stage: str) -> tuple[str, str | None]:
    """Path and DVC hash of ``stage``'s first output in a parsed ``dvc.lock``."""
    outs = (lock.get("stages") or {}).get(stage, {}).get("outs") or []
    if not outs:
        raise LookupError(f"dvc.lock has no outputs for stage '{stage}'")
    out = outs[0]
    return str(out["path"]), (str(out["md5"]) if "md5" in out else None)


def metrics_paths(pipeline: dict[str, Any]) -> list[str]:
    """Every ``metrics:`` file declared in a parsed ``dvc.yaml``."""
    paths: list[str] = []
    for stage in (pipeline.get("stages") or {}).values():
        for entry in (stage or {}).get("metrics") or []:
            paths.extend([entry] if isinstance(entry, str) else list(entry))
    return paths


def _read(root: Path, path: str, rev: str) -> str:
    import dvc.api

    return str(dvc.api.read(path, repo=str(root), rev=rev, mode="r"))


def describe(root: Path, tag: str, stage: str = EXPORT_STAGE) -> ModelVersion:
    commit, date = _git(root, "log", "-1", "--format=%H %cI", tag).split()
    entry = ModelVersion(tag=tag, commit=commit[:12], date=date)
    lock = _yaml_at(root, tag, "dvc.lock")
    if lock is None:
        entry.problems.append("no dvc.lock at this tag")
        return entry
    try:
        entry.bundle_path, entry.dvc_hash = bundle_out(lock, stage)
    except (LookupError, KeyError, AttributeError) as exc:
        entry.problems.append(str(exc))
    if entry.bundle_path:
        try:
            manifest = json.loads(_read(root, f"{entry.bundle_path}/{MANIFEST}", tag))
            entry.name = manifest.get("name")
            entry.version = manifest.get("version")
            entry.created_at = manifest.get("created_at")
        except Exception as exc:  # DVC raises many types; the tag is listed regardless
            entry.problems.append(f"{MANIFEST} unavailable: {_reason(exc)}")
    for path in metrics_paths(_yaml_at(root, tag, "dvc.yaml") or {}):
        try:
            metrics = json.loads(_read(root, path, tag))
        except Exception as exc:
            entry.problems.append(f"{path} unavailable: {_reason(exc)}")
            continue
        if isinstance(metrics, dict):
            entry.metrics.update(metrics)
    return entry


def _reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def list_versions(
    root: Path, pattern: str = DEFAULT_PATTERN, stage: str = EXPORT_STAGE
) -> list[ModelVersion]:
    return [describe(root, tag, stage) for tag in list_tags(root, pattern)]


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def render_table(versions: Sequence[ModelVersion]) -> str:
    header = ("TAG", "DATE", "BUNDLE", "VERSION", "METRICS")
    rows = [header]
    for v in versions:
        metrics = " ".join(f"{k}={_fmt(val)}" for k, val in sorted(v.metrics.items()))
        rows.append((v.tag, v.date[:19], v.name or "-", v.version or "-", metrics or "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    lines = []
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    for v in versions:
        lines.extend(f"{v.tag}: {problem}" for problem in v.problems)
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ml.versions", description=__doc__.splitlines()[0])
    p.add_argument("--pattern", default=DEFAULT_PATTERN, help="git tag glob (default model-v*)")
    p.add_argument("--stage", default=EXPORT_STAGE, help="stage whose output is the bundle")
    p.add_argument("--json", action="store_true", help="one JSON list instead of a table")
    p.add_argument("--repo", type=Path, default=Path.cwd(), help="project root (default .)")
    args = p.parse_args(argv)
    try:
        versions = list_versions(args.repo.resolve(), args.pattern, args.stage)
    except VersionsError as exc:
        sys.stderr.write(f"ml.versions: error: {exc}\n")
        return 1
    if args.json:
        sys.stdout.write(json.dumps([asdict(v) for v in versions], indent=2) + "\n")
    elif versions:
        sys.stdout.write(render_table(versions) + "\n")
    else:
        sys.stderr.write(f"no tags match {args.pattern!r}; release with `git tag model-vN`\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
