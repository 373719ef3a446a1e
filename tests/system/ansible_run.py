"""Run ansible-playbook from tests and read its PLAY RECAP."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
_RECAP = re.compile(r"^(?P<host>\S+)\s+:\s+(?P<counts>(?:\w+=\d+\s*)+)$")


@dataclass(frozen=True)
class PlaybookRun:
    returncode: int
    output: str
    recap: dict[str, dict[str, int]]

    def counts(self, host: str) -> dict[str, int]:
        if host not in self.recap:
            raise AssertionError(f"{host} missing from PLAY RECAP:\n{self.output[-3000:]}")
        return self.recap[host]


def parse_recap(output: str) -> dict[str, dict[str, int]]:
    """Host -> {ok, changed, unreachable, failed, skipped, rescued, ignored} from a recap."""
    recap: dict[str, dict[str, int]] = {}
    in_recap = False
    for line in output.splitlines():
        if line.startswith("PLAY RECAP"):
            in_recap = True
            continue
        match = _RECAP.match(line.strip()) if in_recap else None
        if match:
            pairs = (item.split("=") for item in match["counts"].split())
            recap[match["host"]] = {key: int(value) for key, value in pairs}
    return recap


def run_playbook(inventory: Path, playbook: str, *args: str, timeout: float = 1500) -> PlaybookRun:
    """ansible-playbook with the repo's config; output is kept for assertion messages."""
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "PYTHONPATH": str(REPO),
    }
    binary = Path(sys.executable).parent / "ansible-playbook"
    result = subprocess.run(
        [str(binary), "-i", str(inventory), playbook, *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    output = result.stdout + result.stderr
    return PlaybookRun(result.returncode, output, parse_recap(output))


def changed_tasks(output: str) -> str:
    """Every task that reported a change: its header, any diff Ansible printed, its result line."""
    lines = output.splitlines()
    start = 0
    found = []
    for index, line in enumerate(lines):
        if line.startswith(("TASK [", "RUNNING HANDLER [")):
            start = index
        elif line.startswith("changed:"):
            found.append("\n".join(lines[start : index + 1]))
    return "\n".join(found) or output[-3000:]


def failures(output: str) -> str:
    """Every failed task of a run: its header and the fatal line, for assertion messages."""
    lines = output.splitlines()
    header = ""
    found = []
    for line in lines:
        if line.startswith(("TASK [", "RUNNING HANDLER [")):
            header = line
        elif line.startswith("fatal:"):
            found.append(f"{header}\n{line[:1500]}")
    return "\n".join(found)
