"""Checks that the control node can run test hosts, with the command that fixes each gap."""

from __future__ import annotations

import os
import shutil

from berth.vps.errors import VpsError

# Program the tool runs -> Debian package that ships it (see requirements/apt.txt).
TOOLS: dict[str, str] = {
    "debootstrap": "debootstrap",
    "systemd-nspawn": "systemd-container",
    "socat": "socat",
    "/usr/sbin/apt-cacher-ng": "apt-cacher-ng",
    "zstd": "zstd",
    "ip": "iproute2",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
    "tar": "tar",
    "chroot": "coreutils",
}


def require_root() -> None:
    if os.geteuid() != 0:
        raise VpsError(
            "the test VPS tool must run as root (it uses debootstrap, systemd-nspawn and ip netns)"
        )


def missing_packages() -> list[str]:
    """Debian packages whose programs are not installed, in a stable order."""
    missing = {pkg for tool, pkg in TOOLS.items() if shutil.which(tool) is None}
    return sorted(missing)


def require_tools() -> None:
    missing = missing_packages()
    if missing:
        raise VpsError(
            "missing Debian packages: "
            + " ".join(missing)
            + "\nfix: scripts/install-system-deps.sh"
            + "\n  or: apt-get update && apt-get install -y --no-install-recommends "
            + " ".join(missing)
        )


def require_all() -> None:
    require_root()
    require_tools()
