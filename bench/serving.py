"""Serving benchmark on this machine's loopback: nginx -> Gunicorn (uvicorn workers, unix
socket) -> the API serving a model bundle, driven by wrk with keep-alive; in the same run a raw
ASGI app returning constant JSON behind the same nginx and Gunicorn setup (the floor).

    python -m bench.serving [--duration 10] [--bundle models/wine-classifier]

Prints one table of figures and whether each target of docs/observability.md is met. Needs the
Debian packages nginx and wrk (requirements/apt.txt) and a model bundle (``make model``).
Gunicorn settings (workers, keepalive, max_requests) come from roles/app/defaults/main.yml, so
the figures are those of the deployed configuration.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[1]
ROLE_DEFAULTS = ROOT / "roles" / "app" / "defaults" / "main.yml"

# Targets (issue 4): figures on this 2-core machine.
TARGET_RPS = 5000
TARGET_P99_MS = 15.0
TARGET_FLOOR_SHARE = 0.40
TARGET_P50_C1_MS = 1.0
TARGET_ROWS_PER_S = 200_000
TARGET_RSS_MB = 100.0

GUNICORN_CONF = """
from app.gunicorn_hooks import child_exit, on_starting  # noqa: F401
bind = "unix:{socket}"
worker_class = "uvicorn_worker.UvicornWorker"
workers = {workers}
keepalive = {keepalive}
max_requests = {max_requests}
max_requests_jitter = {max_requests_jitter}
worker_tmp_dir = "/dev/shm"
preload_app = False
accesslog = None
errorlog = "{errorlog}"
loglevel = "warning"
"""

NGINX_CONF = """
daemon off;
master_process on;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    client_max_body_size 1m;
    # Keep request bodies in memory (a 100-record body is about 40 kB, above the 16 kB default,
    # and would be written to a temporary file for every request).
    client_body_buffer_size 1m;
    # The socket several times (UPSTREAM_ENTRIES, see there).
    upstream app {{ {app_servers} keepalive {keepalive}; }}
    upstream floor {{ {floor_servers} keepalive {keepalive}; }}
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_set_header Host $host;
    proxy_set_header X-Request-ID $request_id;
    # As in the deployed site: a POST whose upstream connection was closed under it (a recycled
    # worker, an idle keep-alive connection) is retried on a fresh one, not answered 502.
    proxy_next_upstream error timeout non_idempotent;
    server {{ listen 127.0.0.1:{app_port}; location / {{ proxy_pass http://app; }} }}
    server {{ listen 127.0.0.1:{floor_port}; location / {{ proxy_pass http://floor; }} }}
}}
"""

# How often each Gunicorn socket is listed in its nginx upstream block. With one server nginx
# retries a request (proxy_next_upstream error non_idempotent) only when it failed on a cached
# keep-alive connection, never when it failed on a fresh one: its round-robin balancer gives a
# one-server upstream no further try. A worker that exits (max_requests) closes the connections
# it accepted but has no request on yet, so a POST can fail on a fresh connection too: 502.
# With the socket listed N times every failure, on any connection, moves on to the next entry
# (another connection to the same socket), up to N tries. Each failed cached connection is
# closed, and at most KEEPALIVE of them are cached, so KEEPALIVE + 1 entries always leave a try
# on a fresh connection; 2 and 4 entries still let a 502 through when a busy worker exited with
# many cached connections ("no live upstreams"). max_fails=0: failures never mark an entry down
# (with fail_timeout=0 an entry is skipped for the rest of the second, all of them skipped means
# 502 for every request in that second).
KEEPALIVE = 16
UPSTREAM_ENTRIES = KEEPALIVE + 1


def upstream_servers(socket_path: Path) -> str:
    return f"server unix:{socket_path} max_fails=0; " * UPSTREAM_ENTRIES


# wrk: POST the body in BODY_FILE, then print the figures as one JSON line.
WRK_SCRIPT = """
local f = io.open(os.getenv("BENCH_BODY"), "r")
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "max_us": %d, ' ..
    '"errors": %d, "non2xx": %d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.max, e.connect + e.read + e.write + e.timeout, e.status))
end
"""


@dataclass(frozen=True)
class Run:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int  # socket errors and timeouts (wrk's 2 s)
    non2xx: int  # answers other than 2xx, e.g. nginx's 502 when no try reached a worker

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def need(program: str) -> str:
    path = shutil.which(program) or shutil.which(program, path="/usr/sbin:/usr/bin")
    if path is None:
        sys.exit(f"{program} is not installed: run `make system-deps` (requirements/apt.txt)")
    return path


@contextmanager
def process(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"server exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=2, trust_env=False).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    sys.exit(f"{url} not ready after {timeout} s:\n{log.read_text()[-3000:]}")


def wrk(url: str, body: Path, script: Path, connections: int, seconds: int) -> Run:
    threads = min(2, connections)
    result = subprocess.run(
        [need("wrk"), f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "-s", str(script), url],
        env={**os.environ, "BENCH_BODY": str(body)},
        capture_output=True,
        text=True,
        check=True,
    )
    line = next(x for x in result.stdout.splitlines() if x.startswith("BENCH "))
    data = json.loads(line[6:])
    return Run(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        errors=data["errors"],
        non2xx=data["non2xx"],
    )


def worker_pids(master_pid: int) -> set[str]:
    return set(Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split())


def worker_rss_mb(master_pid: int) -> list[float]:
    sizes = []
    for pid in sorted(worker_pids(master_pid)):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                sizes.append(int(line.split()[1]) / 1024)
    return sizes


def workers_cpu_seconds(master_pid: int) -> float:
    """User + system CPU time of the master's workers (seconds), the live ones and those that
    exited (a worker recycled after max_requests): the master reaps its workers, so their
    time is in its cutime and cstime."""
    ticks = 0
    for pid in worker_pids(master_pid):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    master = Path(f"/proc/{master_pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks += int(master[13]) + int(master[14])  # cutime, cstime (fields 16 and 17)
    return ticks / os.sysconf("SC_CLK_TCK")


def nginx_error_kinds(lines: list[str]) -> dict[tuple[str, str], int]:
    """Counts of nginx's upstream errors by upstream (app or floor) and kind (the message
    without its numbers, e.g. "recv() failed (104: Connection reset by peer) while reading
    response header from upstream", or "no live upstreams while connecting to upstream")."""
    kinds: dict[tuple[str, str], int] = {}
    for line in lines:
        found = re.search(
            r"\*\d+ (.*? upstream), client: .*?(?:(app|floor)\.sock|http://(app|floor)/)", line
        )
        if found is None or "GET /ready" in line:  # readiness polls before the app listened
            continue
        key = (found.group(2) or found.group(3), found.group(1))
        kinds[key] = kinds.get(key, 0) + 1
    return kinds


def gunicorn_settings(max_requests: int | None) -> dict[str, Any]:
    defaults = yaml.safe_load(ROLE_DEFAULTS.read_text())
    return {
        "workers": int(defaults["app_gunicorn_workers"]),
        "keepalive": int(defaults["app_gunicorn_keepalive"]),
        "max_requests": int(
            defaults["app_gunicorn_max_requests"] if max_requests is None else max_requests
        ),
        "max_requests_jitter": int(defaults["app_gunicorn_max_requests_jitter"]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--bundle", type=Path, default=ROOT / "models" / "wine-classifier")
    parser.add_argument(
        "--max-requests",
        type=int,
        default=None,
        help="Gunicorn max_requests (default: the app role's app_gunicorn_max_requests)",
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    bundle = args.bundle.resolve()
    if not (bundle / "manifest.json").is_file():
        sys.exit(f"no model bundle at {bundle}: run `make model` first")
    nginx = need("nginx")
    need("wrk")
    manifest = json.loads((bundle / "manifest.json").read_text())
    record = manifest["golden"][0]["input"]
    gunicorn = gunicorn_settings(args.max_requests)

    with tempfile.TemporaryDirectory(prefix="berth-bench-") as tmp_name:
        tmp = Path(tmp_name)
        tmp.chmod(0o755)  # nginx workers (an unprivileged user when run as root) reach the sockets
        (tmp / "metrics").mkdir()
        app_port, floor_port = free_port(), free_port()
        (tmp / "one.json").write_text(json.dumps({"records": [record]}))
        (tmp / "batch.json").write_text(json.dumps({"records": [record] * 100}))
        script = tmp / "post.lua"
        script.write_text(WRK_SCRIPT)
        (tmp / "nginx.conf").write_text(
            NGINX_CONF.format(
                tmp=tmp,
                app_port=app_port,
                floor_port=floor_port,
                app_servers=upstream_servers(tmp / "app.sock"),
                floor_servers=upstream_servers(tmp / "floor.sock"),
                keepalive=KEEPALIVE,
            )
        )
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "PROMETHEUS_MULTIPROC_DIR": str(tmp / "metrics"),
            "BERTH_MODEL_DIR": str(bundle),
            "BERTH_LOG_LEVEL": "INFO",  # production default: one access log line per request
            "BERTH_LOG_FORMAT": "json",
        }
        bin_dir = Path(sys.executable).parent
        for name in ("app", "floor"):
            (tmp / f"{name}.conf.py").write_text(
                GUNICORN_CONF.format(
                    socket=tmp / f"{name}.sock", errorlog=tmp / f"{name}-error.log", **gunicorn
                )
            )

        def gunicorn_args(name: str, target: str) -> list[str]:
            return [str(bin_dir / "gunicorn"), "-c", str(tmp / f"{name}.conf.py"), target]

        with (
            process(gunicorn_args("app", "app.main:app"), env, tmp / "app.log") as app,
            process(gunicorn_args("floor", "bench.floor:app"), env, tmp / "floor.log") as floor,
            process([nginx, "-c", str(tmp / "nginx.conf")], env, tmp / "nginx.log") as ngx,
        ):
            app_url, floor_url = f"http://127.0.0.1:{app_port}", f"http://127.0.0.1:{floor_port}"
            wait_ready(f"{app_url}/ready", app, tmp / "app.log")
            wait_ready(f"{floor_url}/", floor, tmp / "floor.log")
            if ngx.poll() is not None:
                sys.exit((tmp / "nginx.log").read_text())
            one, batch = tmp / "one.json", tmp / "batch.json"
            predict = f"{app_url}/v1/predict"
            print(f"wrk runs of {args.duration} s each; gunicorn {gunicorn}", flush=True)
            wrk(predict, one, script, 32, 2)  # warm up
            measured: list[Run] = []
            floor_cpu = workers_cpu_seconds(floor.pid)
            pids = worker_pids(floor.pid)
            floor_run = wrk(f"{floor_url}/", one, script, 32, args.duration)
            floor_cpu = workers_cpu_seconds(floor.pid) - floor_cpu
            restarts = [len(worker_pids(floor.pid) - pids)]
            cpu = [workers_cpu_seconds(app.pid)]
            for connections, body in ((32, one), (1, one), (8, batch)):
                pids = worker_pids(app.pid)
                measured.append(wrk(predict, body, script, connections, args.duration))
                cpu.append(workers_cpu_seconds(app.pid))
                restarts.append(len(worker_pids(app.pid) - pids))
            single, serial, batches = measured
            rss = worker_rss_mb(app.pid)
            app_log = (tmp / "app-error.log").read_text()
            nginx_lines = [
                line
                for line in (tmp / "nginx-error.log").read_text().splitlines()
                if "[warn]" not in line
            ]
            nginx_log = "\n".join(nginx_lines)
            # Upstream errors while serving (not the readiness polls before the app listened).
            upstream_errors = nginx_error_kinds(nginx_lines)

    share = single.rps / floor_run.rps
    rows_per_s = batches.rps * 100
    rss_text = " / ".join(f"{x:.0f} MB" for x in rss)
    rows: list[tuple[str, str, str, bool | None]] = [
        ("floor: constant JSON, c32", f"{floor_run.rps:,.0f} req/s", "", None),
        ("floor, c32 p99", f"{floor_run.p99_ms:.2f} ms", "", None),
        ("single row, c32", f"{single.rps:,.0f} req/s", f">= {TARGET_RPS:,}", None),
        ("single row, c32 p99", f"{single.p99_ms:.2f} ms", f"<= {TARGET_P99_MS} ms", None),
        ("single row, c32 / floor", f"{share:.1%}", f">= {TARGET_FLOOR_SHARE:.0%}", None),
        ("single row, c1 p50", f"{serial.p50_ms:.3f} ms", f"<= {TARGET_P50_C1_MS} ms", None),
        ("100-row batches, c8", f"{rows_per_s:,.0f} rows/s", f">= {TARGET_ROWS_PER_S:,}", None),
        ("RSS per worker", rss_text, f"<= {TARGET_RSS_MB:.0f} MB", None),
    ]
    verdicts = [
        None,
        None,
        single.rps >= TARGET_RPS,
        single.p99_ms <= TARGET_P99_MS,
        share >= TARGET_FLOOR_SHARE,
        serial.p50_ms <= TARGET_P50_C1_MS,
        rows_per_s >= TARGET_ROWS_PER_S,
        bool(rss) and max(rss) <= TARGET_RSS_MB,
    ]
    rows = [(*row[:3], ok) for row, ok in zip(rows, verdicts, strict=True)]
    print(f"\n{'measure':<28} {'figure':<22} {'target':<16} result")
    for name, figure, target, ok in rows:
        verdict = "" if ok is None else ("PASS" if ok else "FAIL")
        print(f"{name:<28} {figure:<22} {target:<16} {verdict}")
    print(
        "workers restarted (Gunicorn max_requests) during floor, single c32, c1, batches: "
        + ", ".join(map(str, restarts))
        + (
            "; a restart shortly slows a measure (its p99 above all): compare with "
            "--max-requests 0"
            if any(restarts)
            else ""
        )
    )
    runs = [floor_run, single, serial, batches]
    socket_errors = sum(run.errors for run in runs)
    non2xx = sum(run.non2xx for run in runs)
    errors = socket_errors + non2xx
    print(
        f"\nc1: {serial.rps:,.0f} req/s, p99 {serial.p99_ms:.2f} ms; batches: "
        f"{batches.rps:,.0f} req/s, p99 {batches.p99_ms:.2f} ms;\n"
        f"non-2xx answers: {non2xx}; socket errors and timeouts: {socket_errors}"
    )
    if upstream_errors:
        print(
            "nginx upstream errors (each is retried on the next upstream entry while one is "
            "left, else answered 502):"
        )
        for (upstream, kind), count in sorted(upstream_errors.items()):
            print(f"  {upstream}: {kind}: {count}")
    # Worker CPU per request: comparable between runs on a busy machine, unlike wall figures
    # (recycled workers included: see workers_cpu_seconds).
    cpu_us = [
        f"{(cpu[i + 1] - cpu[i]) / run.requests * 1e6:.0f} us" if run.requests else "n/a"
        for i, run in enumerate((single, serial, batches))
    ]
    floor_us = floor_cpu / floor_run.requests * 1e6 if floor_run.requests else float("nan")
    print(
        f"worker CPU per request: floor c32 {floor_us:.0f} us, single row c32 {cpu_us[0]}, "
        f"c1 {cpu_us[1]}, "
        f"100 rows c8 {cpu_us[2]}; load average now {os.getloadavg()[0]:.1f}"
    )
    if errors:
        print(f"app log tail:\n{app_log[-1500:]}\nnginx error log tail:\n{nginx_log[-1500:]}")
    failed = errors > 0 or any(ok is False for *_, ok in rows)
    return 1 if failed and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
