"""Ansible inventories (YAML) for a set of test hosts."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

from berth.vps.errors import VpsError
from berth.vps.fsutil import write_atomic

# Throwaway hosts get new host keys every time: never record or check them.
SSH_COMMON_ARGS = "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"


class InventoryHost(Protocol):
    """What the inventory needs to know of a host (host.Host and the pytest Host fit)."""

    @property
    def name(self) -> str: ...

    @property
    def address(self) -> str: ...

    @property
    def key_path(self) -> Path: ...

    @property
    def user(self) -> str: ...

    @property
    def private_address(self) -> str: ...


def _scalar(value: str) -> str:
    # A JSON string is a valid YAML double-quoted scalar.
    return json.dumps(value)


def render_inventory(
    hosts: Sequence[InventoryHost],
    groups: Mapping[str, Sequence[str]] | None = None,
    variables: Mapping[str, str] | None = None,
    private: bool = False,
) -> str:
    """YAML inventory: every host under all.hosts, groups as children, connection vars on all.

    groups maps a group name to host names; variables are extra vars for all hosts; private
    gives every host its berth_private_address (the hosts' shared private network), which
    spreads app, lb and monitoring over several hosts (docs/multi-host.md).
    """
    if not hosts:
        raise VpsError("an inventory needs at least one host")
    names = {host.name for host in hosts}
    key_paths = {str(host.key_path) for host in hosts}
    users = {host.user for host in hosts}
    all_vars = {
        "ansible_ssh_common_args": SSH_COMMON_ARGS,
        "ansible_python_interpreter": "/usr/bin/python3",
        **(variables or {}),
    }
    lines = ["# Written by berth.vps: throwaway test hosts.", "all:", "  hosts:"]
    for host in hosts:
        lines.append(f"    {host.name}:")
        lines.append(f"      ansible_host: {_scalar(host.address)}")
        if len(users) > 1:
            lines.append(f"      ansible_user: {_scalar(host.user)}")
        if len(key_paths) > 1:
            lines.append(f"      ansible_ssh_private_key_file: {_scalar(str(host.key_path))}")
        if private:
            lines.append(f"      berth_private_address: {_scalar(host.private_address)}")
    lines.append("  vars:")
    if len(users) == 1:
        lines.append(f"    ansible_user: {_scalar(users.pop())}")
    if len(key_paths) == 1:
        lines.append(f"    ansible_ssh_private_key_file: {_scalar(key_paths.pop())}")
    lines += [f"    {key}: {_scalar(value)}" for key, value in all_vars.items()]
    if groups:
        lines.append("  children:")
        for group, members in groups.items():
            unknown = sorted(set(members) - names)
            if unknown:
                raise VpsError(f"group {group}: unknown hosts {', '.join(unknown)}")
            lines.append(f"    {group}:")
            lines.append("      hosts:")
            lines += [f"        {member}: {{}}" for member in members]
    return "\n".join(lines) + "\n"


def write_inventory(
    path: Path,
    hosts: Sequence[InventoryHost],
    groups: Mapping[str, Sequence[str]] | None = None,
    variables: Mapping[str, str] | None = None,
    private: bool = False,
) -> Path:
    """Write render_inventory(...) to path and return it."""
    write_atomic(path, render_inventory(hosts, groups, variables, private))
    return path


def parse_group_args(specs: Sequence[str], names: Sequence[str]) -> dict[str, list[str]]:
    """CLI --group values: 'G' puts every named host in G, 'G=a,b' only hosts a and b."""
    groups: dict[str, list[str]] = {}
    for spec in specs:
        group, sep, members = spec.partition("=")
        if not group:
            raise VpsError(f"bad --group {spec!r}: expected G or G=host1,host2")
        chosen = [m for m in members.split(",") if m] if sep else list(names)
        groups.setdefault(group, [])
        groups[group] += [m for m in chosen if m not in groups[group]]
    return groups
