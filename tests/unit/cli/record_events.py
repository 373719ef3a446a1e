"""Re-record fixtures/sample-events.jsonl: python -m tests.unit.cli.record_events (no VPS)."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import ansible_runner

from berth.cli.runner import ansible_env

HERE = Path(__file__).parent / "fixtures"
DATA_KEYS = {"play", "play_pattern", "task", "role", "host", "res", "ignore_errors", "name"}
DATA_KEYS |= {"ok", "changed", "failures", "dark", "skipped", "rescued", "ignored", "processed"}


def _slim(event: dict[str, Any]) -> dict[str, Any]:
    data = {k: v for k, v in (event.get("event_data") or {}).items() if k in DATA_KEYS}
    return {"event": event["event"], "event_data": data}


def main() -> int:
    events: list[dict[str, Any]] = []

    def keep(event: dict[str, Any]) -> bool:
        events.append(_slim(event))
        return False

    with tempfile.TemporaryDirectory() as private:
        ansible_runner.run(
            private_data_dir=private,
            playbook=str(HERE / "sample-play.yml"),
            inventory=str(HERE / "sample-inventory.yml"),
            envvars={**ansible_env(Path.cwd()), "ANSIBLE_SSH_ARGS": "-o ConnectTimeout=2"},
            event_handler=keep,
            quiet=True,
        )
    out = HERE / "sample-events.jsonl"
    out.write_text("".join(json.dumps(e, sort_keys=True) + "\n" for e in events))
    sys.stderr.write(f"wrote {len(events)} events to {out}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
