"""Which model version `berth deploy` and `berth rollback` act on."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from berth.cli.runner import CliError
from berth.cli.status import HostState


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
    """Extra vars for playbooks/deploy.yml: a release tag or bundle version (``model_version``,
    fetched through DVC on the control node), else a bundle directory (default: this
    checkout's)."""
    extravars: dict[str, str] = {}
    if bundle is not None:
        extravars["model_bundle_dir"] = str(bundle.resolve())
    if version is None:
        bundle_version(bundle or default_bundle(project))  # fail early when nothing was exported
        return extravars
    extravars["model_version"] = version
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
