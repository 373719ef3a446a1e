"""`berth up` then `berth down --hardening` on a fresh host leaves it as it was (docs/teardown.md).

The host is recorded (packages, users, groups, listening ports, enabled units, files under /etc,
/srv, /var/lib, /opt) before and after; only the leftovers docs/teardown.md lists may differ. This
breaks the host (it ends unhardened), so it gets its own fresh host, not the shared `provisioned`.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
from pathlib import Path

import pytest

from berth.vps import Host
from tests.system.ansible_run import REPO
from tests.system.conftest import bundle_manifest, make_inventory
from tests.vps.plugin import VpsFactory

pytestmark = pytest.mark.system

SNAPSHOT = Path(__file__).parent / "files" / "host_snapshot.sh"
# Keep in step with the leftovers table of docs/teardown.md.
LEFTOVERS = [
    # Backup copies that useradd/userdel write next to the account databases.
    re.compile(r"^f /etc/(passwd|group|shadow|gshadow|subuid|subgid)- [0-9a-f]+$"),
    # ucf keeps numbered backups of its registry after a package with a ucf-managed file is purged.
    re.compile(r"^f /var/lib/ucf/(hashfile|registry)\.\d+$"),
]
# A small package not in the base image, installed by hand between `berth up` and the teardown.
BY_HAND = "tree"
SUMMARY_ROW = re.compile(r"^\s+(?P<host>\S+)\s+(?P<counts>(\d+\s+){6}\d+)$")


def snapshot(factory: VpsFactory, host: Host) -> dict[str, set[str]]:
    """The host's state by section; run as root (before site.yml, and after a full teardown)."""
    result = factory.ssh(host, SNAPSHOT.read_text())
    sections: dict[str, set[str]] = {}
    current = ""
    for line in result.stdout.splitlines():
        if line.startswith("## "):
            current = line[3:]
            sections[current] = set()
        elif current:
            sections[current].add(line)
    assert set(sections) >= {"packages", "users", "listening", "enabled-units", "files"}, sections
    return sections


def berth(*args: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    """The berth command exactly as an operator runs it (bin/berth)."""
    return subprocess.run(
        [str(REPO / "bin" / "berth"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
        cwd=REPO,
    )


def summary_counts(output: str, host: str) -> dict[str, int]:
    """The host's row of berth's SUMMARY table."""
    names = ("ok", "changed", "failed", "unreachable", "skipped", "rescued", "ignored")
    tail = output[output.rindex("\nSUMMARY\n") :]
    for line in tail.splitlines():
        match = SUMMARY_ROW.match(line)
        if match and match["host"] == host:
            return dict(zip(names, map(int, match["counts"].split()), strict=True))
    raise AssertionError(f"{host} has no row in the summary:\n{tail}")


def _unexpected(before: dict[str, set[str]], after: dict[str, set[str]]) -> list[str]:
    problems = []
    for section in before:
        for sign, lines in (
            ("+", after[section] - before[section]),
            ("-", before[section] - after[section]),
        ):
            problems += [
                f"{section}: {sign} {line}"
                for line in sorted(lines)
                if not any(p.match(line) for p in LEFTOVERS)
            ]
    return problems


def test_up_then_down_leaves_the_host_as_it_was(vps_factory: VpsFactory, tmp_path: Path) -> None:
    bundle_manifest()
    host = vps_factory.create("teardown")
    before = snapshot(vps_factory, host)
    inventory = make_inventory(tmp_path / "inventory", [host])

    up = berth("-i", str(inventory), "up")
    assert up.returncode == 0, up.stdout[-6000:] + up.stderr[-2000:]
    counts = summary_counts(up.stdout, host.name)
    assert counts["failed"] == 0 and counts["unreachable"] == 0, counts
    assert counts["changed"] > 10, counts  # a fresh host really was provisioned
    assert up.stdout.rstrip().splitlines()[-1].startswith("ok: ")

    status = berth("-i", str(inventory), "status")
    assert status.returncode == 0, status.stdout + status.stderr
    assert f"{host.name} ({host.name})  healthy" in status.stdout
    assert "monitoring not installed" in status.stdout or "alerts    none firing" in status.stdout

    refused = berth("-i", str(inventory), "down", "--hardening")
    assert refused.returncode == 1
    assert "pass --yes" in refused.stderr

    # Default teardown: Berth goes, the hardening (deploy user, sshd, firewall) stays.
    kept = berth("-i", str(inventory), "down", "--yes")
    assert kept.returncode == 0, kept.stdout[-6000:] + kept.stderr[-2000:]
    gone = berth("-i", str(inventory), "status")
    assert gone.returncode == 5, gone.stdout + gone.stderr
    assert "model     none installed" in gone.stdout and "release   none" in gone.stdout
    deploy = dataclasses.replace(host, user="deploy")
    vps_factory.ssh(
        deploy,
        "test ! -e /etc/nginx && test ! -e /srv/berth && test ! -e /etc/berth && ! id berth"
        " && sudo nft list table inet berth >/dev/null && systemctl is-active fail2ban",
    )

    # An operator installs a package by hand: even the full teardown must keep it.
    vps_factory.ssh(deploy, f"sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q {BY_HAND}")

    # Full teardown, run after the default one: removals are safe to repeat.
    down = berth("-i", str(inventory), "down", "--yes", "--hardening")
    assert down.returncode == 0, down.stdout[-6000:] + down.stderr[-2000:]
    assert summary_counts(down.stdout, host.name)["failed"] == 0

    # Root can log in again (the distribution's sshd_config), and nothing else is left behind.
    after = snapshot(vps_factory, host)
    assert f"ii {BY_HAND}" in after["packages"], f"the hand-installed {BY_HAND} was purged"
    after["packages"].discard(f"ii {BY_HAND}")
    problems = _unexpected(before, after)
    assert not problems, "teardown left differences:\n" + "\n".join(problems)

    # Once more on the bare host: nothing left to remove, so nothing changes.
    again = berth("-i", str(inventory), "down", "--yes", "--hardening")
    assert again.returncode == 0, again.stdout[-6000:] + again.stderr[-2000:]
    counts = summary_counts(again.stdout, host.name)
    assert counts["failed"] == 0 and counts["changed"] == 0, again.stdout[-6000:]
