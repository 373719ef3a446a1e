"""Cleanup jobs: rotated logs, old model versions, old releases, failed-deploy leftovers,
dangling container images, and the disk-pressure check that runs them all early.

Every job takes the settings, a clock and ``dry_run``, and returns an ``Outcome``; all deletion
goes through ``app.jobs.safety.remove``.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from app.core.config import SchedulerSettings
from app.jobs.safety import Outcome, checked_root, link_targets, remove
from app.jobs.state import read_latest, read_watermark

log = logging.getLogger("berth.jobs.cleanup")
Clock = Callable[[], float]

# Rotated log names: app.log.1, app.log.2.gz, access.log-20260101, error.log.old ...
ROTATED = re.compile(r"\.(\d+|old|gz|xz|zst|bz2)$|-\d{8}(\.gz)?$")
TMP_PREFIX = ".tmp-"
RELEASE_MARKER = ".berth-release-complete"


def _entries(root: Path) -> list[Path]:
    return sorted(root.iterdir(), key=lambda p: p.name)


def _mtime(path: Path) -> float:
    return path.lstat().st_mtime


def cleanup_logs(settings: SchedulerSettings, now: Clock, dry_run: bool) -> Outcome:
    """Rotated files past the age limit, then the oldest rotated files beyond the size budget.
    Live logs (no rotation suffix) are never removed: their writers hold them open."""
    outcome = Outcome(dry_run=dry_run)
    cutoff = now() - settings.cleanup_log_max_age_days * 86400
    for configured in settings.cleanup_log_dirs:
        root = checked_root(configured)
        if root is None:
            continue
        files = [
            path
            for path in root.rglob("*")
            if not path.is_symlink() and path.is_file() and ROTATED.search(path.name)
        ]
        files.sort(key=_mtime)
        total = sum(
            p.lstat().st_size for p in root.rglob("*") if not p.is_symlink() and p.is_file()
        )
        for path in files:
            size = path.lstat().st_size
            too_old_or_big = _mtime(path) < cutoff or total > settings.cleanup_log_max_bytes
            if too_old_or_big and remove(path, root, (), outcome):
                total -= size
    if settings.cleanup_journal_max_size:
        _vacuum_journal(settings.cleanup_journal_max_size, dry_run)
    return outcome


def _vacuum_journal(cap: str, dry_run: bool) -> None:
    journalctl = shutil.which("journalctl")
    if journalctl is None:
        log.warning("journalctl not found; journal left alone")
        return
    if dry_run:
        log.info("would vacuum the journal", extra={"max_size": cap})
        return
    # Archived journal files only: journald's active files are never touched by --vacuum-size.
    result = subprocess.run(
        [journalctl, f"--vacuum-size={cap}"], capture_output=True, text=True, timeout=300
    )
    if result.returncode != 0:
        raise RuntimeError(f"journalctl --vacuum-size={cap} failed: {result.stderr.strip()}")
    log.info("journal vacuumed", extra={"max_size": cap, "detail": result.stderr.strip()[-300:]})


def rollback_target(deploys_log: Path, active: Path | None, root: Path) -> Path | None:
    """The version served before the active one, from the deploy records (newest last)."""
    if active is None or not deploys_log.is_file():
        return None
    versions: list[str] = []
    for line in deploys_log.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("version"), str):
            versions.append(record["version"])
    for version in reversed(versions):
        candidate = root / version
        if version and "/" not in version and candidate.resolve() != active:
            return candidate.resolve() if candidate.is_dir() else None
    return None


def _keep_newest(
    root: Path, candidates: list[Path], keep: int, protected: set[Path], outcome: Outcome
) -> Outcome:
    """Remove every candidate but the ``keep`` newest (by mtime) and the protected ones."""
    newest_first = sorted(candidates, key=_mtime, reverse=True)
    outcome.kept.extend(newest_first[:keep])
    for path in newest_first[keep:]:
        remove(path, root, protected, outcome)
    return outcome


def cleanup_models(settings: SchedulerSettings, now: Clock, dry_run: bool) -> Outcome:
    """Keep the N newest versions, the active one (`current`) and the rollback target."""
    outcome = Outcome(dry_run=dry_run)
    root = checked_root(settings.cleanup_models_root)
    if root is None:
        return outcome
    protected = link_targets(root)
    active = (root / "current").resolve() if (root / "current").is_symlink() else None
    target = rollback_target(settings.cleanup_deploys_log, active, root)
    if target is not None:
        protected.add(target)
    versions = [
        path
        for path in _entries(root)
        if not path.is_symlink() and path.is_dir() and not path.name.startswith(".")
    ]
    return _keep_newest(root, versions, settings.cleanup_models_keep, protected, outcome)


def cleanup_releases(settings: SchedulerSettings, now: Clock, dry_run: bool) -> Outcome:
    """Keep the N newest complete releases and the active one (`/srv/berth/current`)."""
    outcome = Outcome(dry_run=dry_run)
    root = checked_root(settings.cleanup_releases_root)
    if root is None:
        return outcome
    protected = link_targets(root)
    current = settings.cleanup_releases_current
    if current.is_symlink() or current.exists():
        protected.add(current.resolve())
    releases = [
        path
        for path in _entries(root)
        if not path.is_symlink() and path.is_dir() and (path / RELEASE_MARKER).is_file()
    ]
    return _keep_newest(root, releases, settings.cleanup_releases_keep, protected, outcome)


def _is_tmp_bundle(path: Path) -> bool:
    return path.name.startswith(TMP_PREFIX)


def _is_unfinished_release(path: Path) -> bool:
    return path.is_dir() and not (path / RELEASE_MARKER).is_file()


def cleanup_leftovers(settings: SchedulerSettings, now: Clock, dry_run: bool) -> Outcome:
    """Temporary bundle directories (`.tmp-*` under the models root) and releases that never
    got their completion marker, once older than the grace period (a deploy may be running)."""
    outcome = Outcome(dry_run=dry_run)
    cutoff = now() - settings.cleanup_leftover_grace_hours * 3600
    models = checked_root(settings.cleanup_models_root)
    releases = checked_root(settings.cleanup_releases_root)
    checks: list[tuple[Path | None, Callable[[Path], bool]]] = [
        (models, _is_tmp_bundle),
        (releases, _is_unfinished_release),
    ]
    for root, is_leftover in checks:
        if root is None:
            continue
        protected = link_targets(root)
        if root == releases:
            protected.add(settings.cleanup_releases_current.resolve())
        for path in _entries(root):
            if path.is_symlink() or not is_leftover(path):
                continue
            if _mtime(path) < cutoff:
                remove(path, root, protected, outcome)
            else:
                outcome.kept.append(path)
    return outcome


def container_engine() -> str | None:
    for name in ("docker", "podman"):
        path = shutil.which(name)
        if path:
            return path
    return None


def cleanup_images(settings: SchedulerSettings, now: Clock, dry_run: bool) -> Outcome:
    """Dangling container images (untagged layers of rebuilt images), if an engine exists."""
    outcome = Outcome(dry_run=dry_run)
    engine = container_engine() if settings.cleanup_images_enabled else None
    if engine is None:
        return outcome
    listed = subprocess.run(
        [engine, "images", "--filter", "dangling=true", "--quiet", "--no-trunc"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    images = sorted(set(listed.stdout.split()))
    if images and not dry_run:
        subprocess.run(
            [engine, "image", "prune", "--force"],
            capture_output=True,
            text=True,
            timeout=600,
            check=True,
        )
    outcome.removed.extend(Path(image) for image in images)
    log.info(
        "would prune images" if dry_run else "pruned images",
        extra={"engine": engine, "images": len(images)},
    )
    return outcome


def cleanup_batch(settings: SchedulerSettings, now: Clock, dry_run: bool) -> Outcome:
    """Old result files (except the published ones) and incoming files behind the watermark."""
    outcome = Outcome(dry_run=dry_run)
    cutoff = now() - settings.cleanup_batch_max_age_days * 86400
    latest = read_latest(settings.batch_state_dir)
    published = {Path(name).name for name in latest.files} if latest else set()
    results = checked_root(settings.batch_output_dir)
    if results is not None:
        for path in _entries(results):
            if path.is_symlink() or not path.is_file() or path.name in published:
                continue
            if path.name.startswith(("results-", TMP_PREFIX)) and _mtime(path) < cutoff:
                remove(path, results, (), outcome)
    position = read_watermark(settings.batch_state_dir).position
    incoming = checked_root(settings.batch_incoming_dir)
    if incoming is None or settings.batch_source != "directory" or not position:
        return outcome
    for path in _entries(incoming):
        if path.is_symlink() or not path.is_file() or path.name.startswith("."):
            continue
        info = path.lstat()
        scored = (max(info.st_ctime_ns, info.st_mtime_ns), path.name) <= tuple(position)
        if scored and _mtime(path) < cutoff:
            remove(path, incoming, (), outcome)
    return outcome


CLEANUP_JOBS: dict[str, Callable[[SchedulerSettings, Clock, bool], Outcome]] = {
    "cleanup-logs": cleanup_logs,
    "cleanup-models": cleanup_models,
    "cleanup-releases": cleanup_releases,
    "cleanup-leftovers": cleanup_leftovers,
    "cleanup-images": cleanup_images,
    "cleanup-batch": cleanup_batch,
}


def disk_usage_percent(path: Path) -> float:
    usage = shutil.disk_usage(path)
    return 100.0 * usage.used / usage.total if usage.total else 0.0


def roots_under_pressure(
    settings: SchedulerSettings, usage: Callable[[Path], float] = disk_usage_percent
) -> list[Path]:
    """Cleanup roots whose file system is fuller than the threshold."""
    roots = [
        *settings.cleanup_log_dirs,
        settings.cleanup_models_root,
        settings.cleanup_releases_root,
    ]
    return [
        root
        for root in roots
        if root.exists() and usage(root) > settings.cleanup_disk_threshold_percent
    ]
