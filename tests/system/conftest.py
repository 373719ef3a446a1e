"""One test VPS provisioned by site.yml, shared by every system test that does not break it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from berth.vps import Host, write_inventory
from tests.system.ansible_run import REPO, PlaybookRun, run_playbook
from tests.vps.plugin import VpsFactory

GROUPS = ("app", "lb", "monitoring")


@dataclass(frozen=True)
class Provisioned:
    host: Host
    inventory: Path
    first_run: PlaybookRun


def make_inventory(
    directory: Path,
    hosts: list[Host],
    groups: dict[str, list[str]] | None = None,
    *,
    private: bool = False,
) -> Path:
    """An inventory dir with the hosts and the local inventory's group_vars (deploy user, keys).

    Without groups every host is in app, lb and monitoring; private gives each host its
    berth_private_address (several hosts)."""
    directory.mkdir(parents=True, exist_ok=True)
    names = [h.name for h in hosts]
    chosen = groups if groups is not None else dict.fromkeys(GROUPS, names)
    write_inventory(directory / "hosts.yml", hosts, chosen, private=private)
    (directory / "group_vars").symlink_to(REPO / "inventory" / "local" / "group_vars")
    return directory


def bundle_manifest() -> dict[str, Any]:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    path = REPO / "models" / params["export"]["model_name"] / "manifest.json"
    if not path.exists():
        pytest.fail(f"{path} is missing: run `make model` (dvc repro) before the system tests")
    manifest: dict[str, Any] = json.loads(path.read_text())
    return manifest


@pytest.fixture(scope="session")
def provisioned(
    vps_factory: VpsFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Provisioned]:
    """A fresh host provisioned once by site.yml for the whole session, then destroyed."""
    bundle_manifest()
    host = vps_factory.create("sys")
    try:
        inventory = make_inventory(tmp_path_factory.mktemp("inventory"), [host])
        run = run_playbook(inventory, "site.yml")
        if run.returncode != 0:
            pytest.fail(f"site.yml failed on a fresh host:\n{run.output[-6000:]}", pytrace=False)
        yield Provisioned(host, inventory, run)
    finally:
        vps_factory.destroy(host)
