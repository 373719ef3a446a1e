"""Ansible inventories written for test hosts."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from berth.vps.errors import VpsError
from berth.vps.host import Host
from berth.vps.inventory import parse_group_args, render_inventory, write_inventory

KEY = Path("/keys/id_ed25519")
WEB = Host("web-1", 11, "10.231.11.2", KEY)
LB = Host("lb-1", 12, "10.231.12.2", KEY)


def test_inventory_lists_hosts_with_connection_vars() -> None:
    data = yaml.safe_load(render_inventory([WEB, LB]))

    assert data["all"]["hosts"]["web-1"] == {"ansible_host": "10.231.11.2"}
    assert data["all"]["vars"]["ansible_user"] == "root"
    assert data["all"]["vars"]["ansible_ssh_private_key_file"] == str(KEY)
    assert "UserKnownHostsFile=/dev/null" in data["all"]["vars"]["ansible_ssh_common_args"]
    assert "children" not in data["all"]


def test_inventory_groups_and_extra_vars() -> None:
    text = render_inventory(
        [WEB, LB], {"app": ["web-1"], "lb": ["lb-1"]}, {"berth_proxy": "http://127.0.0.1:3142"}
    )

    data = yaml.safe_load(text)
    assert data["all"]["children"]["app"]["hosts"] == {"web-1": {}}
    assert data["all"]["children"]["lb"]["hosts"] == {"lb-1": {}}
    assert data["all"]["vars"]["berth_proxy"] == "http://127.0.0.1:3142"


def test_private_inventory_gives_each_host_its_private_address() -> None:
    plain = yaml.safe_load(render_inventory([WEB, LB]))
    private = yaml.safe_load(render_inventory([WEB, LB], private=True))

    assert "berth_private_address" not in plain["all"]["hosts"]["web-1"]
    assert private["all"]["hosts"]["web-1"]["berth_private_address"] == "10.232.0.11"
    assert private["all"]["hosts"]["lb-1"]["berth_private_address"] == "10.232.0.12"


def test_hosts_with_different_keys_carry_their_own() -> None:
    other = Host("db-1", 13, "10.231.13.2", Path("/other/key"))

    data = yaml.safe_load(render_inventory([WEB, other]))

    assert data["all"]["hosts"]["db-1"]["ansible_ssh_private_key_file"] == "/other/key"
    assert "ansible_ssh_private_key_file" not in data["all"]["vars"]


def test_group_with_unknown_host_is_an_error() -> None:
    with pytest.raises(VpsError, match="unknown hosts nope"):
        render_inventory([WEB], {"app": ["nope"]})


def test_empty_inventory_is_an_error() -> None:
    with pytest.raises(VpsError):
        render_inventory([])


def test_group_args_all_or_listed_hosts() -> None:
    groups = parse_group_args(["app", "lb=lb-1", "app=web-1"], ["web-1", "lb-1"])

    assert groups == {"app": ["web-1", "lb-1"], "lb": ["lb-1"]}


def test_ansible_reads_the_written_inventory(tmp_path: Path) -> None:
    path = write_inventory(tmp_path / "inv.yml", [WEB, LB], {"app": ["web-1", "lb-1"]})
    ansible_inventory = Path(sys.executable).with_name("ansible-inventory")

    out = subprocess.run(
        [str(ansible_inventory), "-i", str(path), "--list"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    data = json.loads(out)
    assert sorted(data["app"]["hosts"]) == ["lb-1", "web-1"]
    assert data["_meta"]["hostvars"]["web-1"]["ansible_host"] == "10.231.11.2"
    assert data["_meta"]["hostvars"]["lb-1"]["ansible_user"] == "root"
