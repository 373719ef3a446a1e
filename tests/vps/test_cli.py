"""The testvps command line: argument handling that needs no host."""

from __future__ import annotations

import pytest

from berth.vps.cli import _parser


def test_ssh_logs_in_as_root_unless_told() -> None:
    args = _parser().parse_args(["ssh", "web", "uptime"])
    assert (args.name, args.user, args.cmd) == ("web", "root", ["uptime"])


def test_ssh_user_can_be_the_deploy_user() -> None:
    args = _parser().parse_args(["ssh", "--user", "deploy", "web", "sudo", "true"])
    assert (args.user, args.cmd) == ("deploy", ["sudo", "true"])


def test_down_needs_a_name_or_all() -> None:
    with pytest.raises(SystemExit):
        _parser().parse_args(["down"])


def test_ssh_options_after_the_name_belong_to_the_command() -> None:
    args = _parser().parse_args(["ssh", "web", "ls", "--user"])
    assert (args.user, args.cmd) == ("root", ["ls", "--user"])
