"""Which model version `berth deploy` and `berth rollback` act on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from berth.cli.runner import CliError
from berth.cli.status import HostState


def _model_options(project: Path) -> dict[str, Any]:
    spec = yaml.safe_load((project / "roles/model/meta/argument_specs.yml").read_text())
    options: dict[str, Any] = spec["argument_specs"]["main"].get("options", {})
    return options


def default_bundle(project: Path) -> Path:
    params = yaml.safe_load((project / "params.yaml").read_text())
    return project / "models" / str(params["export"]["model_name"])


def bundle_version(bundle: Path) -> str:
    manifest = bundle / "manifest.json"
    if not manifest.is_file():
        raise CliError(f"no model bundle at {bundle} (no manifest.json): run `make model`")
    version: str = json.loads(manifest.read_text())["version"]
    return version


def deploy_vars(project: Path, version: str | None, bundle: Path | None) -> dict[str, str]:
    """Extra vars for playbooks/deploy.yml.

    The model role takes `model_version` once it declares it (fetched from the DVC remote);
    until then a VERSION must be the bundle this checkout exported, shipped with model_bundle_dir.
    """
    extravars: dict[str, str] = {}
    if bundle is not None:
        extravars["model_bundle_dir"] = str(bundle.resolve())
    if version is None:
        bundle_version(bundle or default_bundle(project))  # fail early when nothing was exported
        return extravars
    if "model_version" in _model_options(project):
        extravars["model_version"] = version
        return extravars
    local = bundle_version(bundle or default_bundle(project))
    if local != version:
        raise CliError(
            f"this checkout's bundle is version {local}, not {version}. Check out the commit that "
            f"built {version} and run `make model`, or use `berth rollback {version}` if that "
            "version is still on the servers."
        )
    return extravars


def previous_version(states: list[HostState]) -> str:
    """The version served before the current one, from the first host's deploy log."""
    for hs in states:
        if hs.state is None or not hs.state.get("model"):
            continue
        current = hs.state["model"]["version"]
        for entry in reversed(hs.state.get("deploys") or []):
            version = entry.get("version") if isinstance(entry, dict) else None
            if version and version != current:
                return str(version)
        others = [v for v in hs.state["model"].get("installed", []) if v != current]
        raise CliError(
            f"{hs.host} has no earlier deploy on record; name a version: berth rollback VERSION "
            f"(on the host: {', '.join(others) or 'no other version'})"
        )
    raise CliError("no host answered with a model installed; see `berth status`")
