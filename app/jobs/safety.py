"""Removal that cannot escape its root: the only code in the scheduler that deletes files.

Rules: a root must be an absolute path at least two levels deep; an item is removed only when its
own path (not following links) lies directly or indirectly under the resolved root; symbolic links
are never followed, neither to decide nor to delete (a link is not an item we own: it is skipped);
protected paths (active model, active release...) are never removed, nor anything holding them.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("berth.jobs.cleanup")


class UnsafeRootError(ValueError):
    """A configured cleanup root that could reach outside Berth's own files."""


@dataclass
class Outcome:
    """What a cleanup removed (or, in a dry run, would remove)."""

    removed: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)
    bytes_freed: int = 0
    dry_run: bool = False


def checked_root(root: Path) -> Path | None:
    """The resolved root, or None when it does not exist; refuse roots such as / or /var."""
    if not root.is_absolute() or len(root.parts) < 3:
        raise UnsafeRootError(
            f"cleanup root {root} is too broad: give an absolute path at least two levels deep "
            "(e.g. /srv/berth/models)"
        )
    if not root.exists():
        return None
    resolved = root.resolve()
    if len(resolved.parts) < 3:
        raise UnsafeRootError(f"cleanup root {root} resolves to {resolved}, which is too broad")
    return resolved


def tree_size(path: Path) -> int:
    """Apparent size of a file or directory tree, links counted as themselves."""
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode):
        return info.st_size
    total = info.st_size
    for dirpath, dirnames, filenames in os.walk(path, followlinks=False):
        for name in dirnames + filenames:
            total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


def is_under(path: Path, root: Path) -> bool:
    """Whether ``path`` (its parent resolved, the last component not followed) is inside root."""
    real = path.parent.resolve() / path.name
    return real != root and real.is_relative_to(root)


def remove(path: Path, root: Path, protected: Iterable[Path], outcome: Outcome) -> bool:
    """Remove one file or directory tree under ``root`` unless a rule forbids it."""
    if path.is_symlink():
        log.warning("skipping a symbolic link", extra={"path": str(path)})
        return False
    if not is_under(path, root):
        log.error("refusing to remove a path outside its root", extra={"path": str(path)})
        return False
    real = path.resolve()
    for guarded in protected:
        if real == guarded or guarded.is_relative_to(real):
            log.info("keeping an active item", extra={"path": str(path)})
            outcome.kept.append(path)
            return False
    size = tree_size(path)
    if not outcome.dry_run:
        if path.is_dir():
            shutil.rmtree(path)  # rmtree never follows links inside the tree
        else:
            path.unlink()
    outcome.removed.append(path)
    outcome.bytes_freed += size
    log.info(
        "would remove" if outcome.dry_run else "removed",
        extra={"path": str(path), "bytes": size},
    )
    return True


def link_targets(root: Path) -> set[Path]:
    """Resolved targets of the links directly in ``root`` that point inside it (current,
    previous...): what those links serve is active and never removed."""
    targets = set()
    for entry in root.iterdir():
        if entry.is_symlink():
            target = entry.resolve()
            if target.is_relative_to(root):
                targets.add(target)
    return targets
