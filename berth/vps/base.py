"""The cached base image: a debootstrapped Debian rootfs that looks like a fresh VPS.

Built once into a zstd tarball whose name carries a hash of the recipe (suite, package list,
recipe version, mirror), so a changed recipe builds a new tarball and an unchanged one is reused.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import time
from pathlib import Path

from berth.vps.config import SUITE, Config
from berth.vps.errors import VpsError
from berth.vps.fsutil import locked, remove_tree, write_atomic
from berth.vps.mirror import DebianMirror, guest_sources, host_mirror
from berth.vps.proc import run, run_to_log, tail

log = logging.getLogger(__name__)

# Bump when the build steps change in a way the package list does not show.
RECIPE_VERSION = 1

# What a minimal Debian VPS image has, plus what Ansible needs to manage it.
PACKAGES: tuple[str, ...] = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "python3",
    "sudo",
    "iproute2",
    "ca-certificates",
    "gnupg",
    "procps",
    "iputils-ping",
    "netbase",
    "ifupdown",
    "less",
)

_TARBALL_PREFIX = f"{SUITE}-base-"
_TARBALL_SUFFIX = ".tar.zst"


def recipe_key(mirror: DebianMirror) -> str:
    """Short hash of everything that shapes the image."""
    recipe = {
        "version": RECIPE_VERSION,
        "suite": SUITE,
        "packages": sorted(PACKAGES),
        "mirror": [mirror.archive, mirror.security],
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]


def tarball_path(config: Config, mirror: DebianMirror) -> Path:
    return config.cache_dir / f"{_TARBALL_PREFIX}{recipe_key(mirror)}{_TARBALL_SUFFIX}"


def _build_log(config: Config) -> Path:
    return config.cache_dir / "base-build.log"


def _finish_rootfs(root: Path, mirror: DebianMirror) -> None:
    """Turn debootstrap's output into a clean image: real sources, no caches, no identity."""
    (root / "etc/apt/sources.list").unlink(missing_ok=True)
    write_atomic(root / "etc/apt/sources.list.d/debian.sources", guest_sources(mirror, SUITE))
    for deb in (root / "var/cache/apt/archives").glob("*.deb"):
        deb.unlink()
    # Each host gets its own SSH host keys and machine id when it is created or boots.
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    write_atomic(root / "etc/machine-id", "", mode=0o444)
    (root / "var/lib/dbus/machine-id").unlink(missing_ok=True)


def _build(config: Config, mirror: DebianMirror, out: Path) -> None:
    build_log = _build_log(config)
    work = config.cache_dir / "build"
    work.mkdir(parents=True, exist_ok=True)
    for stale in work.iterdir():  # left by a build that was killed; we hold the build lock
        remove_tree(stale)
    root = Path(tempfile.mkdtemp(dir=work, prefix="rootfs."))
    # mkdtemp gives 0700; the guest's / inherits it and services like nginx then get EACCES.
    root.chmod(0o755)
    build_log.write_text("")
    try:
        argv = [
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(PACKAGES)}",
            SUITE,
            str(root),
            mirror.archive,
        ]
        code = run_to_log(argv, build_log)
        if code != 0:
            raise VpsError(
                f"building the base image failed (debootstrap exit {code}); log: {build_log}\n"
                + tail(build_log.read_text())
            )
        _finish_rootfs(root, mirror)
        partial = out.with_name(out.name + ".partial")
        run(
            [
                "tar",
                "--numeric-owner",
                "--xattrs",
                "--use-compress-program=zstd -T0 -3 -q",
                "-C",
                str(root),
                "-cf",
                str(partial),
                ".",
            ]
        )
        partial.replace(out)
    finally:
        remove_tree(root)


def ensure_base(config: Config, *, rebuild: bool = False) -> Path:
    """Return the base tarball for the current recipe, building it first if needed."""
    mirror = host_mirror(config.apt_dir)
    out = tarball_path(config, mirror)
    config.cache_dir.mkdir(parents=True, exist_ok=True)
    with locked(config.cache_dir / "base.lock"):
        if out.is_file() and not rebuild:
            return out
        log.info("building base image %s (about 90 s, once) from %s", out.name, mirror.archive)
        started = time.monotonic()
        _build(config, mirror, out)
        log.info("base image ready in %.0f s: %s", time.monotonic() - started, out)
        for old in config.cache_dir.glob(f"{_TARBALL_PREFIX}*{_TARBALL_SUFFIX}"):
            if old != out:
                old.unlink()
    return out
