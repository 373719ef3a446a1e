"""Runs ON a Berth server (python3, standard library only) and prints its state as one JSON object.

`berth status` ships it with Ansible's script module. Every probe degrades to null/an error string
instead of failing, so a half-installed server (or one without monitoring) still reports.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

API_SOCKET = "/run/berth/api.sock"
MODELS = Path("/srv/berth/models")
RELEASE = Path("/srv/berth/current")
DEPLOYS = Path("/var/lib/berth/deploys.jsonl")
ALERTMANAGER = "http://127.0.0.1:9093/api/v2/alerts?active=true&silenced=false&inhibited=false"
PROMETHEUS = "http://127.0.0.1:9090/api/v1/query?query=up%3D%3D0"
LAST_DEPLOYS = 5
API_UNIT = Path("/etc/systemd/system/berth-api.socket")
# On a load balancer: one file per app host with its upstream `server` line (docs/multi-host.md).
UPSTREAM_DIR = Path("/etc/nginx/berth-upstream.d")


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


def _api(path: str) -> dict[str, Any]:
    """GET on the API's unix socket: {status, body} or {error}."""
    try:
        conn = _UnixConnection(API_SOCKET, timeout=5)
        conn.request("GET", path)
        resp = conn.getresponse()
        raw = resp.read()
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = raw.decode(errors="replace")[:200]
        return {"status": resp.status, "body": body}
    except OSError as exc:
        return {"error": str(exc)}


def _http_json(url: str) -> Any:
    """GET a loopback JSON API; None when nothing listens there (component not installed)."""
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return json.loads(resp.read())
    except (ConnectionRefusedError, FileNotFoundError):
        return None
    except OSError as exc:
        reason = getattr(exc, "reason", None)
        if isinstance(reason, ConnectionRefusedError):
            return None
        return {"error": str(exc)}


def _model() -> dict[str, Any] | None:
    current = MODELS / "current"
    if not current.is_symlink():
        return None
    version = os.readlink(current).rstrip("/").rsplit("/", 1)[-1]
    info: dict[str, Any] = {"version": version, "switched_at": current.lstat().st_mtime}
    try:
        manifest = json.loads((current / "manifest.json").read_text())
        info["name"] = manifest.get("name")
        info["created_at"] = manifest.get("created_at")
    except (OSError, ValueError) as exc:
        info["error"] = f"manifest unreadable: {exc}"
    info["installed"] = sorted(
        p.name for p in MODELS.iterdir() if p.is_dir() and not p.is_symlink() and p.name[0] != "."
    )
    return info


def _deploys() -> list[Any]:
    try:
        lines = DEPLOYS.read_text().splitlines()[-LAST_DEPLOYS:]
    except OSError:
        return []
    out: list[Any] = []
    for line in lines:
        try:
            out.append(json.loads(line))
        except ValueError:
            out.append({"raw": line[:200]})
    return out


def _units() -> dict[str, str]:
    result = subprocess.run(
        [
            "systemctl",
            "list-units",
            "--all",
            "--plain",
            "--no-legend",
            "--type=service,socket,timer",
            "berth-*",
            "nginx.service",
            "prometheus*",
            "grafana*",
            "redis*",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    units: dict[str, str] = {}
    for line in result.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 4:
            units[parts[0]] = parts[3] if parts[2] == "active" else parts[2]
    return units


def _alerts() -> Any:
    answer = _http_json(ALERTMANAGER)
    if not isinstance(answer, list):
        return answer
    return [
        {
            "name": a.get("labels", {}).get("alertname"),
            "severity": a.get("labels", {}).get("severity"),
            "since": a.get("startsAt"),
            "summary": a.get("annotations", {}).get("summary"),
        }
        for a in answer
    ]


def _targets_down() -> Any:
    answer = _http_json(PROMETHEUS)
    if not isinstance(answer, dict) or "data" not in answer:
        return answer
    return [r.get("metric", {}) for r in answer["data"].get("result", [])]


def _upstream() -> dict[str, str] | None:
    """App host -> "up" or "down" in this load balancer's upstream; None if it balances none."""
    try:
        entries = sorted(UPSTREAM_DIR.glob("*.conf"))
        return {
            path.stem: "down" if re.search(r"\sdown\s*;", path.read_text()) else "up"
            for path in entries
        } or None
    except OSError as exc:
        return {"error": str(exc)}


def _groups(argv: list[str]) -> list[str] | None:
    """The inventory groups berth passed as --groups=a,b (None when run by hand without it)."""
    for arg in argv:
        if arg.startswith("--groups="):
            return [g for g in arg.removeprefix("--groups=").split(",") if g]
    return None


def main() -> None:
    release = os.readlink(RELEASE).rsplit("/", 1)[-1] if RELEASE.is_symlink() else None
    state = {
        "hostname": socket.gethostname(),
        "now": time.time(),
        "release": release,
        "api_installed": API_UNIT.exists(),
        "groups": _groups(sys.argv[1:]),
        "model": _model(),
        "health": _api("/health"),
        "ready": _api("/ready"),
        "units": _units(),
        "deploys": _deploys(),
        "alerts": _alerts(),
        "targets_down": _targets_down(),
        "upstream": _upstream(),
    }
    print(json.dumps(state))  # noqa: T201


if __name__ == "__main__":
    main()
