"""Ask the demo VPS for a prediction through nginx and show how to do the same with curl.

Usage: python -m berth.demo --host berth-demo [--project DIR]
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

import httpx
import yaml

from berth.vps import Config, VpsError, get


class DemoError(RuntimeError):
    """The demo host did not answer as expected; the message says what to try."""


def _request(url: str, body: dict[str, Any] | None = None, timeout: float = 10.0) -> Any:
    """GET, or POST a JSON body; the decoded answer.

    The demo server's certificate is self-signed (an IP-only server), so it is not verified, and
    plain-HTTP URLs follow nginx's redirect to HTTPS.
    """
    method = "GET" if body is None else "POST"
    try:
        with httpx.Client(follow_redirects=True, verify=False, timeout=timeout) as client:
            resp = client.request(method, url, json=body)
    except httpx.HTTPError as exc:
        raise DemoError(f"{method} {url} failed: {exc}") from exc
    if resp.is_error:
        raise DemoError(f"{method} {url} answered {resp.status_code}: {resp.text[:500]}")
    try:
        return resp.json()
    except ValueError as exc:
        raise DemoError(f"{method} {url} answered non-JSON: {resp.text[:200]!r}") from exc


def sample_record(project: Path) -> dict[str, Any]:
    """A real input row of the exported model: its first golden pair."""
    params = yaml.safe_load((project / "params.yaml").read_text())
    name = params["export"]["model_name"]
    manifest_path = project / "models" / name / "manifest.json"
    if not manifest_path.exists():
        raise DemoError(f"{manifest_path} is missing: run `make model` first.")
    manifest = json.loads(manifest_path.read_text())
    record: dict[str, Any] = manifest["golden"][0]["input"]
    return record


def run(host_name: str, project: Path) -> str:
    try:
        host = get(Config.from_env(), host_name)
    except VpsError as exc:
        raise DemoError(f"{exc} (start it with `make vps` or `bin/berth vps up`)") from exc
    base = f"https://{host.address}"
    health = _request(f"{base}/health")
    body = {"records": [sample_record(project)]}
    answer = _request(f"{base}/v1/predict", body)
    curl = (
        f"curl -sk -X POST {base}/v1/predict -H 'Content-Type: application/json' "
        f"-d {shlex.quote(json.dumps(body, separators=(',', ':')))}"
    )
    return "\n".join(
        [
            "",
            f"Berth answers on the throwaway VPS {host.name} (reachable from this machine only).",
            f"  API:        {base}/  (health: {health.get('status', health)})",
            "              (self-signed certificate: curl -k; set nginx_domain for Let's Encrypt)",
            f"  Model:      {answer.get('model_version')}",
            f"  Try it:     {curl}",
            f"  Prediction: {json.dumps(answer)}",
            "  Remove it:  make demo-down",
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m berth.demo", description=__doc__)
    parser.add_argument("--host", default="berth-demo", help="name of the demo VPS")
    parser.add_argument("--project", type=Path, default=Path.cwd(), help="project checkout")
    args = parser.parse_args(argv)
    try:
        print(run(args.host, args.project))  # noqa: T201
    except DemoError as exc:
        print(f"berth.demo: error: {exc}", file=sys.stderr)  # noqa: T201
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
