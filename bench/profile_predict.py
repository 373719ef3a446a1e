"""Profile the predict path in process, without network: the ASGI app called directly.

    python -m bench.profile_predict [--rows 1] [--requests 3000] [--concurrency 1] [--profile]

Prints wall and CPU microseconds per request (mean of the timed loop; CPU time is the figure
to compare on a busy machine). ``--concurrency N`` keeps N requests in flight, as N keep-alive
connections to one worker would, so concurrent requests share model calls (coalescing). With
``--profile``, the cProfile top entries by cumulative time. Use it for before/after
comparisons of the hot path.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import logging
import os
import pstats
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


async def run(app: Any, body: bytes, requests: int, concurrency: int) -> tuple[float, float]:
    """Wall and CPU (this process, all threads) microseconds per request."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/predict",
        "raw_path": b"/v1/predict",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"host", b"bench"),
        ],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    statuses = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    state: dict[str, Any] = {}
    lifespan_queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await lifespan_queue.put({"type": "lifespan.startup"})
    started = asyncio.Event()

    async def lifespan_send(message: dict[str, Any]) -> None:
        if message["type"] == "lifespan.startup.complete":
            started.set()

    lifespan = asyncio.create_task(
        app(
            {"type": "lifespan", "asgi": {"version": "3.0"}, "state": state},
            lifespan_queue.get,
            lifespan_send,
        )
    )
    await started.wait()

    async def client(count: int) -> None:
        for _ in range(count):
            await app({**scope, "state": dict(state)}, receive, send)

    async def clients(total: int) -> None:
        share, extra = divmod(total, concurrency)
        await asyncio.gather(*(client(share + (i < extra)) for i in range(concurrency)))

    await clients(200)  # warm up
    begin, cpu_begin = time.perf_counter(), time.process_time()
    await clients(requests)
    elapsed, cpu = time.perf_counter() - begin, time.process_time() - cpu_begin
    await lifespan_queue.put({"type": "lifespan.shutdown"})
    await lifespan
    assert set(statuses) == {200}, set(statuses)
    return elapsed / requests * 1e6, cpu / requests * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=1, help="requests in flight")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--bundle", type=Path, default=ROOT / "models" / "wine-classifier")
    args = parser.parse_args()
    # As on a server: metrics in multiprocess mode (prometheus_client picks its value class at
    # import, so before the app is imported), written in batches (BERTH_METRICS_FLUSH_MS).
    metrics_dir = tempfile.TemporaryDirectory(prefix="berth-profile-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir.name
    from app.core.config import Settings
    from app.main import create_app

    manifest = json.loads((args.bundle / "manifest.json").read_text())
    body = json.dumps({"records": [manifest["golden"][0]["input"]] * args.rows}).encode()
    app = create_app(Settings(model_dir=args.bundle, log_level="INFO"))
    handler = logging.getLogger("berth").handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(open(os.devnull, "w"))  # noqa: SIM115  (formatting still runs)
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
    # uvloop when installed, as Uvicorn's workers run (its timers and futures cost differently).
    runner: Callable[[Coroutine[Any, Any, tuple[float, float]]], tuple[float, float]]
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    wall, cpu = runner(run(app, body, args.requests, args.concurrency))
    if args.profile:
        profiler.disable()
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(45)
    print(
        f"{args.rows} row(s), {args.concurrency} in flight: "
        f"{wall:.0f} us wall, {cpu:.0f} us CPU per request"
    )


if __name__ == "__main__":
    main()
