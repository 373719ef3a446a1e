"""Cleanup on a fixture tree: exactly what goes and what stays, links never followed out."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from app.core.config import SchedulerSettings
from app.jobs import cleanup
from app.jobs.safety import UnsafeRootError

NOW = 1_800_000_000.0
DAY = 86400.0


def clock() -> float:
    return NOW


def touch(path: Path, age_days: float, size: int = 10) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_bytes(b"x" * size)
    os.utime(path, (NOW - age_days * DAY, NOW - age_days * DAY), follow_symlinks=False)
    return path


def version(root: Path, name: str, age_days: float) -> Path:
    touch(root / name / "model.onnx", age_days, 100)
    return touch(root / name, age_days)


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Path]:
    srv = tmp_path / "srv" / "berth"
    outside = tmp_path / "outside"
    touch(outside / "precious.txt", 100)
    models = srv / "models"
    for age, name in enumerate(["v6", "v5", "v4", "v3", "v2", "v1"]):
        version(models, name, age + 1)
    (models / "current").symlink_to("v4")  # active: not among the newest
    (models / "escape").symlink_to(outside)  # a link out of the root: never followed
    version(models, ".tmp-v7", 3)  # leftover of a failed upload, older than the grace
    version(models, ".tmp-v8", 0.01)  # an upload in progress
    releases = srv / "releases"
    for age, name in enumerate(["r5", "r4", "r3", "r2", "r1"]):
        touch(releases / name / ".berth-release-complete", age + 1)
        touch(releases / name, age + 1)
    touch(releases / "r0-broken" / "wheels" / "x.whl", 5)  # never got its marker
    touch(releases / "r0-broken", 5)
    (srv / "current").symlink_to(releases / "r1")
    deploys = tmp_path / "deploys.jsonl"
    deploys.write_text(
        "\n".join(json.dumps({"version": v, "action": "deploy"}) for v in ["v1", "v2", "v4"])
        + "\nnot json\n"
    )
    return {"srv": srv, "models": models, "releases": releases, "outside": outside,
            "deploys": deploys, "root": tmp_path}  # fmt: skip


def settings_for(tree: dict[str, Path], **extra: object) -> SchedulerSettings:
    values: dict[str, object] = {
        "cleanup_models_root": tree["models"],
        "cleanup_models_keep": 2,
        "cleanup_deploys_log": tree["deploys"],
        "cleanup_releases_root": tree["releases"],
        "cleanup_releases_current": tree["srv"] / "current",
        "cleanup_releases_keep": 2,
        "cleanup_leftover_grace_hours": 24,
        "cleanup_log_dirs": [tree["root"] / "log" / "berth"],
    }
    values.update(extra)
    return SchedulerSettings(**values)  # type: ignore[arg-type]


def names(paths: list[Path]) -> set[str]:
    return {path.name for path in paths}


def listing(root: Path) -> set[str]:
    return {path.name for path in root.iterdir()}


def test_models_keep_newest_active_and_rollback_target(tree: dict[str, Path]) -> None:
    outcome = cleanup.cleanup_models(settings_for(tree), clock, dry_run=False)
    # Newest two: v6, v5; active: v4 (current); rollback target: v2 (deployed before v4).
    assert names(outcome.removed) == {"v3", "v1"}
    assert listing(tree["models"]) == {
        "v6", "v5", "v4", "v2", "current", "escape", ".tmp-v7", ".tmp-v8"
    }  # fmt: skip
    assert (tree["outside"] / "precious.txt").exists()
    assert outcome.bytes_freed == 2 * (100 + os.lstat(tree["models"] / "v6").st_size)


def test_dry_run_lists_the_same_and_changes_nothing(tree: dict[str, Path]) -> None:
    before = listing(tree["models"])
    dry = cleanup.cleanup_models(settings_for(tree), clock, dry_run=True)
    assert listing(tree["models"]) == before
    real = cleanup.cleanup_models(settings_for(tree), clock, dry_run=False)
    assert names(dry.removed) == names(real.removed) == {"v3", "v1"}
    assert dry.bytes_freed == real.bytes_freed


def test_active_version_is_kept_even_when_keep_is_one(tree: dict[str, Path]) -> None:
    (tree["models"] / "current").unlink()
    (tree["models"] / "current").symlink_to("v1")  # the oldest
    tree["deploys"].unlink()
    outcome = cleanup.cleanup_models(settings_for(tree, cleanup_models_keep=1), clock, False)
    assert names(outcome.removed) == {"v5", "v4", "v3", "v2"}
    assert {"v6", "v1", "current"} <= listing(tree["models"])
    assert (tree["models"] / "current" / "model.onnx").is_file()


def test_a_link_in_the_root_is_never_followed_out(tree: dict[str, Path]) -> None:
    escape_target = tree["outside"]
    for age in (200, 300):
        version(escape_target, f"old{age}", age)
    cleanup.cleanup_models(settings_for(tree, cleanup_models_keep=1), clock, False)
    cleanup.cleanup_leftovers(settings_for(tree), clock, False)
    assert listing(escape_target) == {"precious.txt", "old200", "old300"}
    assert (tree["models"] / "escape").is_symlink()


def test_root_that_is_itself_a_link_stays_inside_its_target(tree: dict[str, Path]) -> None:
    link = tree["root"] / "srv" / "models-link"
    link.symlink_to(tree["models"])
    outcome = cleanup.cleanup_models(settings_for(tree, cleanup_models_root=link), clock, False)
    assert names(outcome.removed) == {"v3", "v1"}


def test_releases_keep_newest_and_active(tree: dict[str, Path]) -> None:
    outcome = cleanup.cleanup_releases(settings_for(tree), clock, dry_run=False)
    # Newest two complete: r5, r4; active: r1. The unfinished one is the leftovers job's.
    assert names(outcome.removed) == {"r3", "r2"}
    assert listing(tree["releases"]) == {"r5", "r4", "r1", "r0-broken"}


def test_leftovers_only_past_the_grace_period(tree: dict[str, Path]) -> None:
    outcome = cleanup.cleanup_leftovers(settings_for(tree), clock, dry_run=False)
    assert names(outcome.removed) == {".tmp-v7", "r0-broken"}
    assert ".tmp-v8" in names(outcome.kept)
    assert ".tmp-v8" in listing(tree["models"])


def test_logs_by_age_then_size_budget_and_never_live_ones(tmp_path: Path) -> None:
    logs = tmp_path / "log" / "berth"
    touch(logs / "app.log", 30, 1000)  # live, old: kept
    touch(logs / "app.log.1", 1, 300)
    touch(logs / "app.log.2.gz", 3, 300)
    touch(logs / "app.log.3.gz", 20, 300)  # past the age limit
    touch(logs / "access.log-20260101", 5, 300)
    (logs / "link.log.1").symlink_to(tmp_path / "elsewhere.1")
    touch(tmp_path / "elsewhere.1", 100)
    config = SchedulerSettings(
        cleanup_log_dirs=[logs], cleanup_log_max_age_days=14, cleanup_log_max_bytes=1700
    )
    outcome = cleanup.cleanup_logs(config, clock, dry_run=False)
    # Age removes app.log.3.gz; 2200 bytes left > 1700, so the oldest rotated goes next.
    assert names(outcome.removed) == {"app.log.3.gz", "access.log-20260101"}
    assert listing(logs) == {"app.log", "app.log.1", "app.log.2.gz", "link.log.1"}
    assert (tmp_path / "elsewhere.1").exists()


@pytest.mark.parametrize("root", ["/", "/srv", "relative/dir"])
def test_broad_roots_are_refused(root: str) -> None:
    config = SchedulerSettings(cleanup_models_root=Path(root))
    with pytest.raises(UnsafeRootError, match="too broad"):
        cleanup.cleanup_models(config, clock, dry_run=True)


def test_disk_pressure_names_only_full_roots(tree: dict[str, Path]) -> None:
    usage = {tree["models"]: 91.0, tree["releases"]: 50.0}
    config = settings_for(tree, cleanup_disk_threshold_percent=90)
    assert cleanup.roots_under_pressure(config, lambda p: usage.get(p, 10.0)) == [tree["models"]]
    config = settings_for(tree, cleanup_disk_threshold_percent=95)
    assert cleanup.roots_under_pressure(config, lambda p: usage.get(p, 10.0)) == []


def test_images_are_left_alone_without_an_engine(
    tree: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tree["root"]))
    assert cleanup.cleanup_images(settings_for(tree), clock, dry_run=False).removed == []


def test_images_pruned_with_a_fake_engine(
    tree: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tree["root"] / "bin"
    bin_dir.mkdir()
    calls = tree["root"] / "calls"
    engine = bin_dir / "docker"
    engine.write_text(
        f'#!/bin/sh\necho "$@" >> {calls}\n'
        'if [ "$1" = images ]; then echo sha256:aaa; echo sha256:bbb; fi\n'
    )
    engine.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    dry = cleanup.cleanup_images(settings_for(tree), clock, dry_run=True)
    assert names(dry.removed) == {"sha256:aaa", "sha256:bbb"}
    assert "prune" not in calls.read_text()
    cleanup.cleanup_images(settings_for(tree), clock, dry_run=False)
    assert "image prune --force" in calls.read_text()
