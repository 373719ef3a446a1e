"""The prediction log file: rotation, backups, and several processes writing at once."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from app.services.predlog import PredictionLog, RotatingJsonLines

ROOT = Path(__file__).resolve().parents[3]


def all_lines(path: Path) -> list[str]:
    files = [path, *sorted(path.parent.glob(f"{path.name}.[0-9]*"))]
    return [line for f in files if f.exists() for line in f.read_text().splitlines()]


def test_rotates_at_max_bytes_and_keeps_backups(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    log = RotatingJsonLines(path, max_bytes=100, backups=2)
    for i in range(10):
        log.write(json.dumps({"i": i, "pad": "x" * 20}))  # 40 bytes a line: 2 per file
    log.close()
    assert sorted(p.name for p in tmp_path.glob("p.jsonl*")) == [
        "p.jsonl",
        "p.jsonl.1",
        "p.jsonl.2",
        "p.jsonl.lock",
    ]
    assert all(p.stat().st_size <= 100 for p in tmp_path.glob("p.jsonl*"))
    # newest last: the current file holds the last lines, .1 the ones before, .3 was dropped
    assert [json.loads(x)["i"] for x in path.read_text().splitlines()] == [8, 9]
    assert [json.loads(x)["i"] for x in Path(f"{path}.1").read_text().splitlines()] == [6, 7]


def test_zero_backups_truncates(tmp_path: Path) -> None:
    log = RotatingJsonLines(tmp_path / "p.jsonl", max_bytes=50, backups=0)
    for i in range(5):
        log.write(json.dumps({"i": i, "pad": "x" * 20}))
    log.close()
    assert [p.name for p in tmp_path.glob("p.jsonl.[0-9]*")] == []


WRITER = """
import sys
from pathlib import Path
from app.services.predlog import RotatingJsonLines
log = RotatingJsonLines(Path(sys.argv[1]), max_bytes=4000, backups=10000)
for i in range(300):
    log.write('{"writer": "%s", "i": %d, "pad": "%s"}' % (sys.argv[2], i, "y" * 40))
"""


def test_two_processes_share_one_rotating_file(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), name], cwd=ROOT)
        for name in ("a", "b")
    ]
    assert [w.wait(timeout=120) for w in writers] == [0, 0]
    entries = [json.loads(line) for line in all_lines(path)]  # every line whole
    for name in ("a", "b"):
        assert sorted(e["i"] for e in entries if e["writer"] == name) == list(range(300))
    assert all(p.stat().st_size <= 4000 for p in tmp_path.glob("p.jsonl*"))
    assert len(list(tmp_path.glob("p.jsonl.[0-9]*"))) >= 10


def test_sampling_uses_the_rate(tmp_path: Path) -> None:
    draws = iter([0.05, 0.2, 0.09999, 0.5])
    log = PredictionLog(tmp_path / "p.jsonl", 0.1, 10_000, 1, rng=lambda: next(draws))
    assert [log.sampled() for _ in range(4)] == [True, False, True, False]
    log.close()
    never = PredictionLog(tmp_path / "q.jsonl", 0.0, 10_000, 1, rng=lambda: 0.0)
    assert not never.sampled()
    never.close()
