"""The shared apt proxy: one apt-cacher-ng on the control node's 127.0.0.1:3142.

It caches Debian packages for every host (backend: this machine's own mirror) and passes
https through with CONNECT, so pip inside a host can reach PyPI via https_proxy. Started once
and shared; each host reaches it through its own socat bridge (see host.py).
"""

from __future__ import annotations

import json
import logging
import pwd
import shutil
from pathlib import Path

from berth.vps.config import PROXY_HOST, PROXY_PORT, Config
from berth.vps.errors import VpsError
from berth.vps.fsutil import locked, remove_tree, write_atomic
from berth.vps.mirror import DebianMirror, host_mirror
from berth.vps.network import port_open, wait_for
from berth.vps.proc import ProcRef, is_running, spawn, stop, tail

log = logging.getLogger(__name__)

ACNG = "/usr/sbin/apt-cacher-ng"
ACNG_USER = "apt-cacher-ng"
ACNG_SUPPORT_DIR = Path("/usr/lib/apt-cacher-ng")


def _state_path(config: Config) -> Path:
    return config.run_dir / "proxy.json"


def _conf_dir(config: Config) -> Path:
    return config.run_dir / "acng-conf"


def _log_dir(config: Config) -> Path:
    return config.run_dir / "acng-log"


def _host_path(uri: str) -> str:
    """'http://mirror.example/debian/' -> 'mirror.example/debian', as apt-cacher-ng matches."""
    return uri.split("://", 1)[-1].rstrip("/")


def acng_conf(config: Config, mirror: DebianMirror) -> str:
    """apt-cacher-ng settings; Debian requests are remapped to this machine's mirror.

    The stock backend list names a mirror that may not resolve from here (503 "Host not
    found"), so the backends are always this machine's own apt mirror.
    """
    lines = [
        f"CacheDir: {config.proxy_cache_dir}",
        f"LogDir: {_log_dir(config)}",
        f"SupportDir: {ACNG_SUPPORT_DIR}",
        f"BindAddress: {PROXY_HOST}",
        f"Port: {PROXY_PORT}",
        "ForeGround: 1",
        "ExThreshold: 4",
        # https (PyPI, etc.) is tunnelled untouched with CONNECT.
        "PassThroughPattern: .*",
        f"Remap-debrep: file:deb_mirror*.gz /debian {_host_path(mirror.archive)} "
        "; file:backends_debian",
    ]
    if mirror.security is not None:
        lines.append(
            f"Remap-secdeb: {_host_path(mirror.security)} /debian-security "
            "; file:backends_debian_security"
        )
    return "\n".join(lines) + "\n"


def _write_config(config: Config, mirror: DebianMirror) -> None:
    conf = _conf_dir(config)
    remove_tree(conf)
    conf.mkdir(parents=True)
    write_atomic(conf / "acng.conf", acng_conf(config, mirror))
    write_atomic(conf / "backends_debian", mirror.archive.rstrip("/") + "/\n")
    if mirror.security is not None:
        write_atomic(conf / "backends_debian_security", mirror.security.rstrip("/") + "/\n")
    for directory in (config.proxy_cache_dir, _log_dir(config)):
        directory.mkdir(parents=True, exist_ok=True)
        shutil.chown(directory, ACNG_USER, ACNG_USER)


def _load(config: Config) -> ProcRef | None:
    try:
        return ProcRef.from_json(json.loads(_state_path(config).read_text()))
    except FileNotFoundError:
        return None


def running(config: Config) -> ProcRef | None:
    """The proxy daemon we started, if it is still running."""
    ref = _load(config)
    return ref if ref is not None and is_running(ref) else None


def ensure_proxy(config: Config) -> ProcRef:
    """Start the proxy unless ours already runs; fail if something else holds the port."""
    config.run_dir.mkdir(parents=True, exist_ok=True)
    config.run_dir.chmod(0o755)
    with locked(config.lock_path):
        ref = running(config)
        if ref is not None:
            return ref
        if port_open(PROXY_HOST, PROXY_PORT):
            raise VpsError(
                f"{PROXY_HOST}:{PROXY_PORT} is in use by a program this tool did not start "
                "(the system apt-cacher-ng?). Stop it, e.g. '/etc/init.d/apt-cacher-ng stop' "
                "or 'systemctl disable --now apt-cacher-ng', then retry."
            )
        try:
            pwd.getpwnam(ACNG_USER)
        except KeyError as exc:
            raise VpsError(
                f"user {ACNG_USER} missing: install the apt-cacher-ng package "
                "(scripts/install-system-deps.sh)"
            ) from exc
        mirror = host_mirror(config.apt_dir)
        _write_config(config, mirror)
        out = config.run_dir / "acng.out"
        log.info(
            "starting apt proxy on %s:%s (backend %s)", PROXY_HOST, PROXY_PORT, mirror.archive
        )
        ref = spawn([ACNG, "-c", str(_conf_dir(config))], out, user=ACNG_USER)
        if not wait_for(lambda: port_open(PROXY_HOST, PROXY_PORT) or not is_running(ref), 10):
            stop(ref)
        if not is_running(ref) or not port_open(PROXY_HOST, PROXY_PORT):
            raise VpsError(f"apt-cacher-ng did not start; {out}:\n{tail(out.read_text())}")
        write_atomic(_state_path(config), json.dumps(ref.to_json()) + "\n")
        return ref


def stop_proxy(config: Config) -> bool:
    """Stop the proxy if we started it; True if one was stopped. The package cache stays."""
    with locked(config.lock_path):
        ref = running(config)
        if ref is not None:
            stop(ref)
        _state_path(config).unlink(missing_ok=True)
        remove_tree(_conf_dir(config))
        return ref is not None
