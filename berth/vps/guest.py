"""Unpack the base image for one host and give it its identity, access and network config."""

from __future__ import annotations

import shutil
from pathlib import Path

from berth.vps.config import LAN_GUEST_IF, PROXY_HOST, PROXY_PORT
from berth.vps.fsutil import write_atomic
from berth.vps.keys import public_key
from berth.vps.proc import run

HOST_CA_DIR = Path("/usr/local/share/ca-certificates")


def extract(tarball: Path, root: Path) -> None:
    root.mkdir(parents=True)
    run(["tar", "--numeric-owner", "--xattrs", "--zstd", "-C", str(root), "-xf", str(tarball)])
    # The guest's / takes the mode of this directory, not of the tarball's '.' entry.
    root.chmod(0o755)


def _interfaces(address: str, gateway: str, lan_address: str) -> str:
    return (
        "auto lo\niface lo inet loopback\n\n"
        "auto host0\niface host0 inet static\n"
        f"  address {address}/24\n  gateway {gateway}\n\n"
        f"auto {LAN_GUEST_IF}\niface {LAN_GUEST_IF} inet static\n"
        f"  address {lan_address}/24\n"
    )


def configure(
    root: Path, *, name: str, address: str, gateway: str, lan_address: str, key: Path
) -> None:
    """Write everything that makes the rootfs a distinct host reachable by SSH as root."""
    run(["chroot", str(root), "ssh-keygen", "-A", "-q"])
    write_atomic(root / "etc/hostname", f"{name}\n")
    write_atomic(
        root / "etc/hosts", f"127.0.0.1 localhost\n127.0.1.1 {name}\n::1 localhost ip6-localhost\n"
    )
    ssh_dir = root / "root/.ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    ssh_dir.chmod(0o700)
    write_atomic(ssh_dir / "authorized_keys", public_key(key).read_text(), mode=0o600)
    # apt (http, and https via CONNECT) goes through the proxy bridged onto the guest's loopback.
    proxy = f"http://{PROXY_HOST}:{PROXY_PORT}"
    write_atomic(
        root / "etc/apt/apt.conf.d/01proxy",
        f'Acquire::http::Proxy "{proxy}";\nAcquire::https::Proxy "{proxy}";\n',
    )
    write_atomic(root / "etc/network/interfaces", _interfaces(address, gateway, lan_address))
    _copy_host_cas(root)


def _copy_host_cas(root: Path) -> None:
    """Trust the control node's extra CAs (e.g. a TLS-intercepting egress proxy) in the guest."""
    certs = sorted(HOST_CA_DIR.glob("*.crt")) if HOST_CA_DIR.is_dir() else []
    if not certs:
        return
    target = root / HOST_CA_DIR.relative_to("/")
    target.mkdir(parents=True, exist_ok=True)
    for cert in certs:
        shutil.copyfile(cert, target / cert.name)
    run(["chroot", str(root), "update-ca-certificates"])
