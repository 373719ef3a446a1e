"""The SSH key pair Ansible and the tests use to log in to every host as root."""

from __future__ import annotations

from pathlib import Path

from berth.vps.config import Config
from berth.vps.proc import run


def ensure_key(config: Config) -> Path:
    """Return the private key path, generating an ed25519 pair the first time."""
    key = config.key_path
    if not key.is_file() or not public_key(key).is_file():
        key.parent.mkdir(parents=True, exist_ok=True)
        key.unlink(missing_ok=True)
        public_key(key).unlink(missing_ok=True)
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "berth-vps", "-f", str(key)])
    return key


def public_key(key: Path) -> Path:
    return key.with_name(key.name + ".pub")
