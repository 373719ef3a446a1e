"""The SSH key pair Ansible and the tests use to log in to every host as root."""

from __future__ import annotations

import tempfile
from pathlib import Path

from berth.vps.config import Config
from berth.vps.fsutil import locked
from berth.vps.proc import run

KEYGEN = ("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "berth-vps")


def ensure_key(config: Config) -> Path:
    """Return the private key path, generating an ed25519 pair the first time.

    Safe when several `berth vps up` (or test runs) start at once on a fresh machine: the pair is
    made under a lock, in a scratch directory, and moved into place public key first, so another
    process sees either no pair or a whole one.
    """
    key = config.key_path
    if _complete(key):
        return key
    key.parent.mkdir(parents=True, exist_ok=True)
    with locked(key.parent / "key.lock"):
        if _complete(key):  # another process made it while we waited
            return key
        with tempfile.TemporaryDirectory(dir=key.parent, prefix=".key-") as scratch:
            fresh = Path(scratch) / key.name
            run([*KEYGEN, "-f", str(fresh)])
            public_key(fresh).replace(public_key(key))
            fresh.replace(key)
    return key


def _complete(key: Path) -> bool:
    return key.is_file() and public_key(key).is_file()


def public_key(key: Path) -> Path:
    return key.with_name(key.name + ".pub")
