"""Get the bundle of one model version on the control node, stamped with its provenance.

``export`` writes placeholders for ``git_rev`` and ``created_at`` (deterministic output); the
bundle that ships gets the real values here: the commit of the release tag and its time, or
HEAD (``-dirty`` with uncommitted training changes) for the working tree's bundle. Neither
field is covered by the version hash or the file hashes, so stamping never changes a version.

    python -m ml.release fetch [--version TAG|HASH] --out DIR [--repo PATH]

- no ``--version``: the bundle the working tree exported (``models/<name>``, ``dvc repro``);
- a git tag (``model-v3``): that tag's bundle, read through DVC (local cache, else the default
  remote), the way ``ml.versions`` reads it;
- a bundle version (12 hex digits): the newest tag whose bundle has it, else the working
  tree's bundle if it has it.

Prints ``{"bundle_dir", "name", "version", "git_rev", "created_at", "source"}`` as JSON.
Exits 1 with the reason when the version is unknown or unreadable.

    python -m ml.release locate --version TAG|HASH [--repo PATH]

prints ``{"tag", "path", "dir_md5", "git_rev", "created_at"}``: where the release's bundle is
in the DVC remote (its directory hash, from the tag's ``dvc.lock``), for servers that download
it themselves (``model_fetch: s3``, ``python -m app.fetch_bundle``). A tag needs git only; a
bundle version is looked up in the tags' manifests through DVC, like ``fetch``.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import yaml

from app.services.manifest import MANIFEST_FILENAME, Manifest
from ml.bundle import manifest_bytes, write_bundle
from ml.paths import PROJECT_ROOT
from ml.stage import StageError
from ml.versions import DEFAULT_PATTERN, EXPORT_STAGE, bundle_out, list_tags, list_versions

VERSION_RE = re.compile(r"^[0-9a-f]{12}$")
# Paths whose uncommitted changes make a working-tree bundle "dirty".
TRAINING_PATHS = ("ml", "params.yaml", "dvc.yaml", "dvc.lock")


class ReleaseError(StageError):
    """The requested model version cannot be found or read."""


@dataclass(frozen=True)
class Source:
    """Where a bundle comes from: a tag (read through DVC) or the working tree."""

    description: str
    files: dict[str, bytes]
    git_rev: str
    created_at: datetime


def _git(root: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", *args], cwd=root, capture_output=True, text=True, check=False, timeout=60
    )
    if result.returncode != 0:
        raise ReleaseError(f"git {' '.join(args)} failed in {root}: {result.stderr.strip()}")
    return result.stdout.strip()


def _is_tag(root: Path, name: str) -> bool:
    result = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", f"refs/tags/{name}"],
        cwd=root,
        capture_output=True,
        check=False,
        timeout=60,
    )
    return result.returncode == 0


def _commit_time(root: Path, rev: str) -> datetime:
    return datetime.fromisoformat(_git(root, "log", "-1", "--format=%cI", rev)).astimezone(
        timezone.utc
    )


def working_tree_bundle(root: Path) -> Path:
    params = yaml.safe_load((root / "params.yaml").read_text())
    return root / "models" / str(params["export"]["model_name"])


def from_working_tree(root: Path) -> Source:
    bundle = working_tree_bundle(root)
    if not (bundle / MANIFEST_FILENAME).is_file():
        raise ReleaseError(
            f"no exported bundle at {bundle}: run `make model` (dvc repro) first, or deploy a "
            "released version with -e model_version=<tag>"
        )
    manifest = Manifest.model_validate_json((bundle / MANIFEST_FILENAME).read_bytes())
    files = {name: (bundle / name).read_bytes() for name in manifest.files}
    files[MANIFEST_FILENAME] = (bundle / MANIFEST_FILENAME).read_bytes()
    try:
        head = _git(root, "rev-parse", "HEAD")
        dirty = bool(_git(root, "status", "--porcelain", "--", *TRAINING_PATHS))
        rev, when = (
            (f"{head}-dirty", datetime.now(timezone.utc))
            if dirty
            else (
                head,
                _commit_time(root, head),
            )
        )
    except (ReleaseError, OSError):
        rev, when = "unknown", datetime.now(timezone.utc)
    return Source(f"working tree ({bundle})", files, rev, when)


def from_tag(root: Path, tag: str) -> Source:
    import dvc.api

    lock_text = subprocess.run(
        ["git", "show", f"{tag}:dvc.lock"], cwd=root, capture_output=True, text=True, check=False
    )
    if lock_text.returncode != 0:
        raise ReleaseError(f"tag {tag} has no dvc.lock: it is not a model release")
    path, _ = bundle_out(yaml.safe_load(lock_text.stdout), EXPORT_STAGE)
    try:
        raw = dvc.api.read(f"{path}/{MANIFEST_FILENAME}", repo=str(root), rev=tag, mode="rb")
        manifest = Manifest.model_validate_json(raw)
        files = {
            name: dvc.api.read(f"{path}/{name}", repo=str(root), rev=tag, mode="rb")
            for name in manifest.files
        }
    except ReleaseError:
        raise
    except Exception as exc:  # DVC raises many types (missing cache, remote errors)
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ReleaseError(
            f"cannot read the bundle of {tag} ({path}) through DVC: {first}. Is the DVC remote "
            "reachable and was the release pushed (`dvc push`)?"
        ) from exc
    files[MANIFEST_FILENAME] = bytes(raw)
    commit = _git(root, "rev-list", "-n", "1", tag)
    return Source(f"tag {tag} ({path})", files, commit, _commit_time(root, commit))


def resolve(root: Path, version: str | None, pattern: str = DEFAULT_PATTERN) -> Source:
    if not version:
        return from_working_tree(root)
    if _is_tag(root, version):
        return from_tag(root, version)
    if not VERSION_RE.match(version):
        tags = ", ".join(list_tags(root, pattern)) or "none"
        raise ReleaseError(
            f"unknown model version {version!r}: not a git tag and not a 12-hex-digit bundle "
            f"version. Release tags here: {tags}. List versions with `python -m ml.versions`."
        )
    known = list_versions(root, pattern)
    for entry in known:
        if entry.version == version:
            return from_tag(root, entry.tag)
    local = working_tree_bundle(root) / MANIFEST_FILENAME
    if local.is_file() and Manifest.model_validate_json(local.read_bytes()).version == version:
        return from_working_tree(root)
    listed = ", ".join(f"{e.tag}={e.version or '?'}" for e in known) or "none"
    raise ReleaseError(
        f"unknown model version {version}: no release tag ({pattern}) has a bundle with it "
        f"(releases: {listed}) and the working tree's bundle is a different version. List "
        "versions with `python -m ml.versions`, or deploy by tag."
    )


def locate(root: Path, version: str | None, pattern: str = DEFAULT_PATTERN) -> dict[str, str]:
    """Where a release's bundle is in the DVC remote, from git alone (no DVC, no credentials):
    the tag's ``dvc.lock`` names the export output's directory hash (``<md5>.dir``)."""
    if not version:
        raise ReleaseError(
            "servers pull released versions only (model_fetch: s3): name a release tag that was "
            "pushed (-e model_version=model-v3), or deploy this checkout's bundle with "
            "model_fetch: control"
        )
    if _is_tag(root, version):
        tag = version
    elif VERSION_RE.match(version):
        known = list_versions(root, pattern)
        found = [entry.tag for entry in known if entry.version == version]
        if not found:
            listed = ", ".join(f"{e.tag}={e.version or '?'}" for e in known) or "none"
            raise ReleaseError(
                f"unknown model version {version}: no release tag ({pattern}) has a bundle with "
                f"it (releases: {listed}). Deploy by tag, or list versions with "
                "`python -m ml.versions`."
            )
        tag = found[0]
    else:
        tags = ", ".join(list_tags(root, pattern)) or "none"
        raise ReleaseError(
            f"unknown model version {version!r}: not a git tag and not a 12-hex-digit bundle "
            f"version. Release tags here: {tags}."
        )
    lock_text = subprocess.run(
        ["git", "show", f"{tag}:dvc.lock"], cwd=root, capture_output=True, text=True, check=False
    )
    if lock_text.returncode != 0:
        raise ReleaseError(f"tag {tag} has no dvc.lock: it is not a model release")
    try:
        path, dir_md5 = bundle_out(yaml.safe_load(lock_text.stdout), EXPORT_STAGE)
    except (LookupError, AttributeError) as exc:
        raise ReleaseError(f"the dvc.lock of tag {tag} names no bundle: {exc}") from exc
    if not dir_md5 or not dir_md5.endswith(".dir"):
        raise ReleaseError(
            f"the dvc.lock of tag {tag} has no directory hash for {path}: the bundle is not a "
            "DVC-tracked directory"
        )
    commit = _git(root, "rev-list", "-n", "1", tag)
    return {
        "tag": tag,
        "path": path,
        "dir_md5": dir_md5,
        "git_rev": commit,
        "created_at": _commit_time(root, commit).isoformat(),
    }


def stamp(source: Source, out_dir: Path) -> Manifest:
    """Write the source's bundle to ``out_dir`` with ``git_rev``/``created_at`` filled in."""
    manifest = Manifest.model_validate_json(source.files[MANIFEST_FILENAME])
    stamped = manifest.model_copy(
        update={"git_rev": source.git_rev, "created_at": source.created_at}
    )
    stamped = Manifest.model_validate_json(manifest_bytes(stamped))  # revalidate
    assert stamped.version == manifest.version
    files = {name: data for name, data in source.files.items() if name != MANIFEST_FILENAME}
    write_bundle(out_dir, files, stamped)
    return stamped


def fetch(
    root: Path, version: str | None, out: Path, pattern: str = DEFAULT_PATTERN
) -> dict[str, str]:
    source = resolve(root, version, pattern)
    manifest = stamp(source, out)
    return {
        "bundle_dir": str(out),
        "name": manifest.name,
        "version": manifest.version,
        "git_rev": manifest.git_rev,
        "created_at": manifest.created_at.isoformat(),
        "source": source.description,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ml.release", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    get = sub.add_parser("fetch", help="write one version's stamped bundle to --out")
    get.add_argument("--version", default="", help="git tag or 12-hex bundle version")
    get.add_argument("--out", type=Path, required=True, help="directory to write (replaced)")
    get.add_argument("--repo", type=Path, default=PROJECT_ROOT)
    get.add_argument("--pattern", default=DEFAULT_PATTERN, help="release tag pattern")
    where = sub.add_parser(
        "locate", help="print the tag, bundle path and DVC directory hash of a release"
    )
    where.add_argument("--version", default="", help="git tag or 12-hex bundle version")
    where.add_argument("--repo", type=Path, default=PROJECT_ROOT)
    where.add_argument("--pattern", default=DEFAULT_PATTERN, help="release tag pattern")
    args = parser.parse_args(argv)
    try:
        if args.command == "locate":
            result = locate(args.repo.resolve(), args.version or None, args.pattern)
        else:
            result = fetch(args.repo.resolve(), args.version or None, args.out, args.pattern)
    except (ReleaseError, StageError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
