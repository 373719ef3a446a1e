"""Build the server's release wheelhouse on the control node.

A release is everything the API needs on a server, as wheels for that server's Python and CPU: a
wheel of the `app` package and the pinned dependencies of requirements/server.txt. The server
installs it into a fresh virtualenv offline. The release id is a hash of the inputs, so an
unchanged project maps to the same id and the server has nothing to do.

Usage: python -m berth.release --python 3.11 --arch x86_64 [--cache DIR]
Prints progress on stderr and, last on stdout, {"id": ..., "wheels": ...} as JSON.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

# Bump when the layout of a release changes, so old cached releases are not reused.
FORMAT = "1"
APP_DIST = "berth-app"
# Newest glibc every supported server has (Ubuntu 22.04: 2.35). Wheels built for this glibc or an
# older one (back to manylinux2014 = glibc 2.17) run on all of them.
GLIBC_MINORS = range(35, 16, -1)
COMPLETE = ".complete"

PYPROJECT_TEMPLATE = """\
[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "{name}"
version = "{version}"
description = "Berth model API (server release)"
requires-python = ">=3.10"

[tool.hatch.build.targets.wheel]
packages = ["app"]
"""


class ReleaseError(RuntimeError):
    """A release could not be built; the message says why and what to do."""


@dataclass(frozen=True)
class Release:
    id: str
    wheels: Path


def _source_files(project: Path) -> list[Path]:
    files = [
        p
        for p in (project / "app").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    ]
    return sorted(files)


def release_id(project: Path, python: str, arch: str) -> str:
    """Hash of everything that ends up in the release: app sources, server pins, target."""
    digest = hashlib.sha256()
    for part in (FORMAT, python, arch):
        digest.update(part.encode() + b"\0")
    lock = project / "requirements" / "server.txt"
    for path in [lock, *_source_files(project)]:
        digest.update(str(path.relative_to(project)).encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]


def _pins(project: Path) -> list[str]:
    lock = project / "requirements" / "server.txt"
    lines = [ln.split("#", 1)[0].strip() for ln in lock.read_text().splitlines()]
    return [ln for ln in lines if ln]


def _run(cmd: list[str], what: str) -> None:
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        lines = (result.stdout + result.stderr).strip().splitlines()
        # pip warns about every unusable index location in the machine's config; keep what matters.
        tail = "\n".join([ln for ln in lines if not ln.startswith("WARNING: Location")][-15:])
        raise ReleaseError(f"{what} failed (exit {result.returncode}):\n{tail}")


def _build_app_wheel(project: Path, version: str, out: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="berth-app-src-") as tmp:
        src = Path(tmp)
        shutil.copytree(
            project / "app", src / "app", ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )
        (src / "pyproject.toml").write_text(
            PYPROJECT_TEMPLATE.format(name=APP_DIST, version=version)
        )
        _run(
            [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
             "--no-build-isolation", "--wheel-dir", str(out), str(src)],
            "building the app wheel",
        )  # fmt: skip


def _platform_args(arch: str) -> list[str]:
    tags = [f"manylinux_2_{minor}_{arch}" for minor in GLIBC_MINORS] + [f"manylinux2014_{arch}"]
    return [arg for tag in tags for arg in ("--platform", tag)]


def _download_dependencies(project: Path, python: str, arch: str, out: Path) -> None:
    if not re.fullmatch(r"3\.\d{1,2}", python):
        raise ReleaseError(f"--python must look like 3.11, got {python!r}")
    abi = "cp" + python.replace(".", "")
    _run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
         "--only-binary=:all:", "--implementation", "cp", "--python-version", python,
         "--abi", abi, "--abi", "abi3", "--abi", "none",
         *_platform_args(arch),
         "--requirement", str(project / "requirements" / "server.txt"),
         "--dest", str(out)],
        f"downloading the server's dependencies for CPython {python} on {arch} "
        "(every pin in requirements/server.txt needs a wheel for that target)",
    )  # fmt: skip


@contextmanager
def _locked(cache: Path) -> Iterator[None]:
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def build(project: Path, python: str, arch: str, cache: Path) -> Release:
    """Build the release for one server target, or reuse the cached one."""
    rid = release_id(project, python, arch)
    final = cache / rid
    with _locked(cache):
        if (final / COMPLETE).exists():
            return Release(rid, final / "wheels")
        _log(f"building release {rid} for CPython {python} on {arch} (downloads wheels once)")
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{rid}-", dir=cache))
        try:
            wheels = tmp / "wheels"
            version = f"0+r{rid}"
            _build_app_wheel(project, version, wheels)
            _download_dependencies(project, python, arch, wheels)
            requirements = [*_pins(project), f"{APP_DIST}=={version}"]
            (wheels / "requirements.txt").write_text("\n".join(requirements) + "\n")
            (tmp / COMPLETE).write_text(rid + "\n")
            shutil.rmtree(final, ignore_errors=True)
            tmp.rename(final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        _log(f"release {rid} ready: {len(list((final / 'wheels').glob('*.whl')))} wheels")
    return Release(rid, final / "wheels")


def _log(message: str) -> None:
    print(f"berth.release: {message}", file=sys.stderr)  # noqa: T201


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m berth.release", description=__doc__)
    parser.add_argument("--python", required=True, help="server Python as MAJOR.MINOR, e.g. 3.11")
    parser.add_argument("--arch", required=True, help="server CPU as uname -m prints it")
    parser.add_argument("--project", type=Path, default=Path.cwd(), help="project checkout")
    parser.add_argument("--cache", type=Path, help="default: PROJECT/.cache/releases")
    args = parser.parse_args(argv)
    project = args.project.resolve()
    cache = (args.cache or project / ".cache" / "releases").resolve()
    try:
        release = build(project, args.python, args.arch, cache)
    except ReleaseError as exc:
        _log(f"error: {exc}")
        return 1
    print(json.dumps({"id": release.id, "wheels": str(release.wheels)}))  # noqa: T201
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
