"""Where the tool keeps its files. The only module that reads the environment.

Every location can be moved with an environment variable, e.g. to keep a second set of
hosts apart or to run the unit tests without root.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

ENV_CACHE_DIR = "BERTH_VPS_CACHE_DIR"
ENV_HOSTS_DIR = "BERTH_VPS_HOSTS_DIR"
ENV_RUN_DIR = "BERTH_VPS_RUN_DIR"
ENV_KEY = "BERTH_VPS_KEY"
ENV_APT_DIR = "BERTH_VPS_APT_DIR"

DEFAULT_CACHE_DIR = Path("/var/cache/berth-vps")
DEFAULT_HOSTS_DIR = Path("/var/lib/berth-vps/hosts")
DEFAULT_RUN_DIR = Path("/run/berth-vps")
DEFAULT_KEY = Path("/var/lib/berth-vps/id_ed25519")
DEFAULT_APT_DIR = Path("/etc/apt")

SUITE = "bookworm"
PROXY_HOST = "127.0.0.1"
PROXY_PORT = 3142
SUBNET_PREFIX = "10.231"
# The hosts' shared private network (like a provider's private network or VPC): one bridge in a
# network namespace of its own, so the control node itself has no address on it and routes nothing.
LAN_PREFIX = "10.232.0"
LAN_NETNS = "berth-vps-lan"
LAN_BRIDGE = "br-lan"
LAN_GUEST_IF = "priv0"
INDEX_MIN = 1
INDEX_MAX = 254


@dataclass(frozen=True)
class Config:
    """File locations of one installation of the tool."""

    cache_dir: Path
    hosts_dir: Path
    run_dir: Path
    key_path: Path
    apt_dir: Path

    @property
    def proxy_cache_dir(self) -> Path:
        """apt-cacher-ng's package cache; kept across runs so hosts install quickly."""
        return self.cache_dir / "acng"

    @property
    def host_state_dir(self) -> Path:
        return self.run_dir / "hosts"

    @property
    def lock_path(self) -> Path:
        return self.run_dir / "lock"

    def host_root(self, name: str) -> Path:
        return self.hosts_dir / name

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Config:
        env = os.environ if environ is None else environ

        def path(var: str, default: Path) -> Path:
            value = env.get(var, "")
            return Path(value) if value else default

        return cls(
            cache_dir=path(ENV_CACHE_DIR, DEFAULT_CACHE_DIR),
            hosts_dir=path(ENV_HOSTS_DIR, DEFAULT_HOSTS_DIR),
            run_dir=path(ENV_RUN_DIR, DEFAULT_RUN_DIR),
            key_path=path(ENV_KEY, DEFAULT_KEY),
            apt_dir=path(ENV_APT_DIR, DEFAULT_APT_DIR),
        )


def address(index: int) -> str:
    """The guest's address on its veth link."""
    return f"{SUBNET_PREFIX}.{index}.2"


def gateway(index: int) -> str:
    """The control node's end of the guest's veth link."""
    return f"{SUBNET_PREFIX}.{index}.1"


def lan_address(index: int) -> str:
    """The guest's address on the hosts' shared private network."""
    return f"{LAN_PREFIX}.{index}"
