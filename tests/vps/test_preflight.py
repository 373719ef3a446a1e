"""Readiness checks name the exact fix."""

import os
import shutil
from pathlib import Path

import pytest

from berth.vps import preflight
from berth.vps.errors import VpsError

APT_REQUIREMENTS = Path(__file__).parents[2] / "requirements" / "apt.txt"


def test_missing_tools_name_their_packages_and_the_install_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    absent = {"socat", "systemd-nspawn"}
    real_which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda tool: None if tool in absent else real_which(tool))

    with pytest.raises(VpsError) as info:
        preflight.require_tools()

    message = str(info.value)
    assert "missing Debian packages: socat systemd-container" in message
    assert "apt-get install -y --no-install-recommends socat systemd-container" in message
    assert "scripts/install-system-deps.sh" in message


def test_not_root_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)

    with pytest.raises(VpsError, match="must run as root"):
        preflight.require_root()


def test_every_tool_package_is_in_the_apt_requirements() -> None:
    listed = {
        line.split("#")[0].strip()
        for line in APT_REQUIREMENTS.read_text().splitlines()
        if line.split("#")[0].strip()
    }

    assert set(preflight.TOOLS.values()) - {"tar", "coreutils"} <= listed
