"""Throwaway test VPS hosts: Debian 12 in systemd-nspawn, reachable by SSH as root.

Typical use::

    config = Config.from_env()
    web = up(config, "web")          # Host(name, index, address, key_path, user)
    write_inventory(path, [web], {"app": ["web"]})
    down(config, "web")

See docs/test-vps.md.
"""

from berth.vps.base import ensure_base
from berth.vps.config import Config
from berth.vps.errors import VpsError
from berth.vps.host import Host, HostStatus, down, down_all, get, ssh_argv, status, up
from berth.vps.inventory import render_inventory, write_inventory
from berth.vps.proxy import ensure_proxy, stop_proxy

__all__ = [
    "Config",
    "Host",
    "HostStatus",
    "VpsError",
    "down",
    "down_all",
    "ensure_base",
    "ensure_proxy",
    "get",
    "render_inventory",
    "ssh_argv",
    "status",
    "stop_proxy",
    "up",
    "write_inventory",
]
