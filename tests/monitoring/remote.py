"""Reach the monitoring stack of a test VPS over SSH (it listens on the host's loopback only)."""

from __future__ import annotations

import base64
import dataclasses
import json
import shlex
import subprocess
from typing import Any

from berth.vps import Host, ssh_argv

# Runs on the test host: answers each PromQL query of a base64 JSON list with its result list; with
# a second argument N, a range query over the host's last N seconds (what a dashboard panel shows).
_QUERY_SCRIPT = """
import base64, json, sys, time, urllib.parse, urllib.request
out = []
span = float(sys.argv[2]) if len(sys.argv) > 2 else 0
for expr in json.loads(base64.b64decode(sys.argv[1])):
    if span:
        end = time.time()
        params = {"query": expr, "start": end - span, "end": end, "step": 15}
        url = "http://127.0.0.1:9090/api/v1/query_range?" + urllib.parse.urlencode(params)
    else:
        url = "http://127.0.0.1:9090/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=20) as response:
            body = json.load(response)
        out.append({"status": body["status"], "result": body["data"]["result"]})
    except Exception as exc:
        out.append({"status": "error", "error": str(exc), "result": []})
print(json.dumps(out))
"""

# Runs on the test host: GETs one loopback URL and prints {"status": ..., "body": ...}.
_GET_SCRIPT = """
import json, sys, urllib.error, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=20) as response:
        print(json.dumps({"status": response.status, "body": response.read().decode()}))
except urllib.error.HTTPError as exc:
    print(json.dumps({"status": exc.code, "body": exc.read().decode()}))
except Exception as exc:
    print(json.dumps({"status": 0, "body": str(exc)}))
"""


def ssh(host: Host, command: str, *, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run a shell command on the host as the deploy user (root SSH is off after site.yml)."""
    argv = ssh_argv(dataclasses.replace(host, user="deploy"), [command])
    return subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def sudo(host: Host, command: str, *, timeout: float = 120) -> str:
    result = ssh(host, f"sudo {command}", timeout=timeout)
    if result.returncode != 0:
        raise AssertionError(
            f"{command!r} failed on {host.name}: {result.stderr or result.stdout}"
        )
    return result.stdout


def query_many(host: Host, exprs: list[str], *, last_seconds: float = 0) -> list[dict[str, Any]]:
    """Instant queries against the host's Prometheus, in one SSH round trip; with
    ``last_seconds``, range queries over that much of the recent past (15 s steps), as a
    dashboard panel draws them."""
    payload = base64.b64encode(json.dumps(exprs).encode()).decode()
    command = f"python3 -c {shlex.quote(_QUERY_SCRIPT)} {payload} {last_seconds:g}"
    result = ssh(host, command)
    if result.returncode != 0:
        raise AssertionError(f"querying Prometheus on {host.name} failed: {result.stderr}")
    answers: list[dict[str, Any]] = json.loads(result.stdout)
    return answers


def query(host: Host, expr: str) -> list[dict[str, Any]]:
    answer = query_many(host, [expr])[0]
    if answer["status"] != "success":
        raise AssertionError(f"{expr}: {answer}")
    result: list[dict[str, Any]] = answer["result"]
    return result


def get(host: Host, url: str) -> tuple[int, str]:
    """GET a URL from inside the host (loopback listeners)."""
    result = ssh(host, f"python3 -c {shlex.quote(_GET_SCRIPT)} {shlex.quote(url)}")
    if result.returncode != 0:
        raise AssertionError(f"GET {url} on {host.name} failed: {result.stderr}")
    answer = json.loads(result.stdout)
    return int(answer["status"]), str(answer["body"])
