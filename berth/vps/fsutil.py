"""File helpers: atomic writes, and tree removal that never descends into a mount."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from berth.vps.errors import VpsError
from berth.vps.proc import run


def write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    """Replace path with text so readers never see a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _unescape_mountinfo(field: str) -> str:
    return (
        field.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
    )


def mounts_under(root: Path) -> list[Path]:
    """Mount points at or below root in our mount namespace, deepest first."""
    root = root.resolve()
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = Path(_unescape_mountinfo(line.split()[4]))
        if point == root or root in point.parents:
            found.append(point)
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def remove_tree(root: Path) -> None:
    """Delete a directory tree, first unmounting anything left mounted inside it.

    A build that died half way (debootstrap) can leave /proc, /sys or /dev mounted in its
    target; deleting through those would damage the control node, so refuse if any remain.
    """
    if not root.exists():
        return
    for point in mounts_under(root):
        run(["umount", "--lazy", str(point)], check=False)
    remaining = mounts_under(root)
    if remaining:
        raise VpsError(
            f"refusing to delete {root}: still mounted: {', '.join(map(str, remaining))}"
        )
    shutil.rmtree(root)


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on path (created if needed) for the with-block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
