"""Base image recipe key, apt proxy settings and the CLI's argument handling."""

from pathlib import Path

import pytest

from berth.vps import base, cli
from berth.vps.config import Config
from berth.vps.mirror import DebianMirror
from berth.vps.proxy import acng_conf

MIRROR = DebianMirror("http://m.example/debian", "http://m.example/debian-security")


def test_recipe_key_changes_with_packages_version_and_mirror(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = base.recipe_key(MIRROR)
    assert base.recipe_key(MIRROR) == key

    assert base.recipe_key(DebianMirror("http://other.example/debian", None)) != key
    monkeypatch.setattr(base, "PACKAGES", (*base.PACKAGES, "vim"))
    assert base.recipe_key(MIRROR) != key
    monkeypatch.setattr(base, "RECIPE_VERSION", base.RECIPE_VERSION + 1)
    assert base.recipe_key(MIRROR) != key


def test_tarball_name_carries_the_recipe_key() -> None:
    config = Config.from_env({"BERTH_VPS_CACHE_DIR": "/c"})

    path = base.tarball_path(config, MIRROR)

    assert path == Path(f"/c/bookworm-base-{base.recipe_key(MIRROR)}.tar.zst")


def test_proxy_config_uses_the_machines_mirror_and_passes_https_through() -> None:
    text = acng_conf(Config.from_env({"BERTH_VPS_RUN_DIR": "/r"}), MIRROR)

    assert "BindAddress: 127.0.0.1\nPort: 3142\n" in text
    assert "PassThroughPattern: .*\n" in text
    assert "m.example/debian ; file:backends_debian" in text
    assert "Remap-secdeb: m.example/debian-security " in text


def test_cli_list_with_nothing_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BERTH_VPS_RUN_DIR", str(tmp_path / "run"))
    monkeypatch.setenv("BERTH_VPS_HOSTS_DIR", str(tmp_path / "hosts"))

    assert cli.main(["list"]) == 0

    assert capsys.readouterr().out.split() == ["NAME", "INDEX", "ADDRESS", "STATE"]


def test_cli_reports_errors_without_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BERTH_VPS_RUN_DIR", str(tmp_path / "run"))

    assert cli.main(["ssh", "nope"]) == 1

    assert capsys.readouterr().err == "testvps: error: no host named nope\n"


def test_cli_down_needs_a_name_or_all() -> None:
    with pytest.raises(SystemExit):
        cli.main(["down"])
