"""Download one model bundle from a DVC remote on S3, on the server (``model_fetch: s3``).

The control node names the bundle by its DVC directory hash (``<md5>.dir``, from the release
tag's ``dvc.lock``) and passes the tag's commit and time; this reads DVC's remote layout
directly, so the server needs neither git nor DVC nor write access to the bucket:

- ``<prefix>/files/md5/<h[:2]>/<h[2:]>.dir``: the directory listing, a JSON list of
  ``{"md5", "relpath"}``;
- ``<prefix>/files/md5/<m[:2]>/<m[2:]>``: each file, named by the md5 of its bytes.

Every object's md5 is checked against its name; a tampered or missing object stops with the
key and what to do. ``manifest.json`` gets the release's ``git_rev``/``created_at`` (given by
the control node; neither is covered by the version or the file hashes).

    python -m app.fetch_bundle manifest --url s3://BUCKET/PREFIX --dir-md5 HASH.dir [...]
    python -m app.fetch_bundle download --url ... --dir-md5 ... --version V --out DIR [...]

``manifest`` prints the stamped manifest (JSON); ``download`` writes the manifest's files and
the stamped manifest to the new directory ``DIR`` and prints ``{"version", "files"}``. Credentials:
``--credentials-file PATH`` reads ``{"access_key_id", "secret_access_key"[, "session_token"]}``
from a root-only JSON file (never from the command line, where process lists and logs show
them); without it, or with empty keys, boto3's default chain (environment, instance profile).
Exit 1 with the reason on stderr.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from app.services.manifest import MANIFEST_FILENAME, Manifest

MD5_RE = re.compile(r"^[0-9a-f]{32}$")
DIR_MD5_RE = re.compile(r"^([0-9a-f]{32})\.dir$")
URL_RE = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:/(?P<prefix>.*))?$")
# A bundle is flat: the file names the manifest allows, nothing in subdirectories.
RELPATH_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
MAX_LISTING_BYTES = 1_000_000
PUSH_HINT = (
    "push the release from a checkout that has it (`dvc push` at the release tag, or "
    "`dvc push --all-tags`), then deploy again"
)


class FetchError(Exception):
    """The bundle cannot be downloaded; the message says which object and what to do."""


@dataclass(frozen=True)
class Remote:
    """A DVC remote on S3: ``s3://bucket/prefix`` and how to reach it."""

    bucket: str
    prefix: str

    @classmethod
    def parse(cls, url: str) -> Remote:
        match = URL_RE.match(url)
        if not match:
            raise FetchError(
                f"{url!r} is not a DVC remote URL on S3 (s3://bucket/prefix, the `url` of the "
                "remote in .dvc/config)"
            )
        return cls(match["bucket"], (match["prefix"] or "").strip("/"))

    def key(self, md5: str) -> str:
        name = f"files/md5/{md5[:2]}/{md5[2:]}"
        return f"{self.prefix}/{name}" if self.prefix else name

    def location(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"


class Fetcher:
    """Reads content-addressed objects of one DVC remote, each checked against its md5."""

    def __init__(self, remote: Remote, client: Any) -> None:
        self.remote = remote
        self.client = client

    def get(self, md5: str, what: str) -> bytes:
        """The object named ``md5`` (``...dir`` for a listing), verified; ``what`` names it."""
        key = self.remote.key(md5)
        where = self.remote.location(key)
        data = self._read(key, where, what)
        actual = hashlib.md5(data, usedforsecurity=False).hexdigest()
        if actual != md5.removesuffix(".dir"):
            raise FetchError(
                f"{where} ({what}) has md5 {actual}, but DVC named it {md5}: the object in the "
                f"remote is corrupted or was replaced. Nothing was installed; {PUSH_HINT} "
                "(delete the bad object first: DVC does not re-upload an object that exists)"
            )
        return data

    def _read(self, key: str, where: str, what: str) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            body = self.client.get_object(Bucket=self.remote.bucket, Key=key)["Body"]
            data: bytes = body.read()
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", "?"))
            if code in ("NoSuchKey", "404", "NotFound"):
                raise FetchError(
                    f"{where} ({what}) is missing from the DVC remote: the release was not "
                    f"pushed there; {PUSH_HINT}"
                ) from exc
            if code == "NoSuchBucket":
                raise FetchError(
                    f"bucket {self.remote.bucket} does not exist at this endpoint: check "
                    "model_s3_url and model_s3_endpoint_url"
                ) from exc
            if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                raise FetchError(
                    f"reading {where} ({what}) was refused ({code}): the server's credentials "
                    "(model_s3_access_key_id/model_s3_secret_access_key) need s3:GetObject on "
                    f"s3://{self.remote.bucket}/{self.remote.prefix}"
                ) from exc
            raise FetchError(f"reading {where} ({what}) failed: {code}: {error}") from exc
        except BotoCoreError as exc:
            raise FetchError(f"cannot read {where} ({what}): {exc}") from exc
        return data

    def listing(self, dir_md5: str) -> dict[str, str]:
        """relpath -> md5 of the bundle directory ``dir_md5`` (``<md5>.dir``)."""
        if not DIR_MD5_RE.match(dir_md5):
            raise FetchError(
                f"{dir_md5!r} is not a DVC directory hash (32 hex digits + .dir, as in dvc.lock)"
            )
        raw = self.get(dir_md5, "the bundle's directory listing")
        if len(raw) > MAX_LISTING_BYTES:
            raise FetchError(f"the directory listing {dir_md5} is larger than expected")
        try:
            entries = json.loads(raw)
            files = {str(entry["relpath"]): str(entry["md5"]) for entry in entries}
        except (ValueError, TypeError, KeyError) as exc:
            raise FetchError(
                f"the directory listing {dir_md5} is not DVC's format: {exc}"
            ) from exc
        for relpath, md5 in files.items():
            if not RELPATH_RE.match(relpath) or not MD5_RE.match(md5):
                raise FetchError(
                    f"the directory listing {dir_md5} names {relpath!r} ({md5!r}): a bundle "
                    "holds flat file names with md5 hashes only"
                )
        if MANIFEST_FILENAME not in files:
            raise FetchError(
                f"the directory {dir_md5} has no {MANIFEST_FILENAME}: it is not a model bundle "
                "(is the export stage's output the first in dvc.lock?)"
            )
        return files


def manifest_bytes(manifest: Manifest) -> bytes:
    """The manifest as ``ml.bundle.manifest_bytes`` writes it (stable order, no null fields)."""
    return (manifest.model_dump_json(indent=2, exclude_none=True) + "\n").encode()


def stamp(raw: bytes, git_rev: str | None, created_at: datetime | None) -> Manifest:
    try:
        manifest = Manifest.model_validate_json(raw)
    except ValidationError as exc:
        raise FetchError(
            f"{MANIFEST_FILENAME} in the remote is not a valid manifest: {exc}"
        ) from exc
    update: dict[str, Any] = {}
    if git_rev:
        update["git_rev"] = git_rev
    if created_at is not None:
        update["created_at"] = created_at
    stamped = manifest.model_copy(update=update)
    return Manifest.model_validate_json(manifest_bytes(stamped))  # revalidate


def read_manifest(
    fetcher: Fetcher, dir_md5: str, git_rev: str | None = None, created_at: datetime | None = None
) -> tuple[Manifest, dict[str, str]]:
    """The stamped manifest of bundle ``dir_md5`` and the bundle's listing."""
    files = fetcher.listing(dir_md5)
    raw = fetcher.get(files[MANIFEST_FILENAME], MANIFEST_FILENAME)
    manifest = stamp(raw, git_rev, created_at)
    missing = sorted(set(manifest.files) - set(files))
    if missing:
        raise FetchError(
            f"the directory {dir_md5} lacks {', '.join(missing)}, which {MANIFEST_FILENAME} "
            "lists: the bundle was changed after export; re-export it with `dvc repro`"
        )
    return manifest, files


def download(
    fetcher: Fetcher,
    dir_md5: str,
    out: Path,
    version: str,
    git_rev: str | None = None,
    created_at: datetime | None = None,
) -> Manifest:
    """Write bundle ``dir_md5`` (which must be ``version``) to the new directory ``out``."""
    manifest, files = read_manifest(fetcher, dir_md5, git_rev, created_at)
    if manifest.version != version:
        raise FetchError(
            f"the directory {dir_md5} holds version {manifest.version}, not {version}: the "
            "release changed between reading its manifest and downloading it; deploy again"
        )
    contents = {name: fetcher.get(files[name], name) for name in manifest.files}
    out.mkdir(mode=0o755)  # new: a leftover directory is the caller's to remove
    out.chmod(0o755)  # whatever the umask
    for name, data in {**contents, MANIFEST_FILENAME: manifest_bytes(manifest)}.items():
        path = out / name
        with path.open("xb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        path.chmod(0o644)
    return manifest


def s3_client(endpoint_url: str | None, region: str | None, credentials: Mapping[str, str]) -> Any:
    import boto3
    from botocore.config import Config

    keys = {
        "aws_access_key_id": credentials.get("access_key_id") or None,
        "aws_secret_access_key": credentials.get("secret_access_key") or None,
        "aws_session_token": credentials.get("session_token") or None,
    }
    return boto3.client(
        "s3",
        endpoint_url=endpoint_url or None,
        region_name=region or None,
        config=Config(connect_timeout=10, read_timeout=60, retries={"max_attempts": 3}),
        **{name: value for name, value in keys.items() if value},
    )


def read_credentials(path: Path) -> dict[str, str]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise FetchError(f"cannot read the credentials file {path}: {exc.strerror}") from None
    try:
        raw = json.loads(text) if text.strip() else {}
    except ValueError:
        raise FetchError(f"{path} is not JSON") from None  # never echo its content
    if not isinstance(raw, dict):
        raise FetchError(f"{path} must hold a JSON object")
    credentials = {str(k): str(v) for k, v in raw.items() if v}
    if bool(credentials.get("access_key_id")) != bool(credentials.get("secret_access_key")):
        raise FetchError("give both access_key_id and secret_access_key, or neither")
    return credentials


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m app.fetch_bundle", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    for name in ("manifest", "download"):
        cmd = sub.add_parser(name)
        cmd.add_argument("--url", required=True, help="DVC remote, s3://bucket/prefix")
        cmd.add_argument("--dir-md5", required=True, help="the bundle's DVC hash, <md5>.dir")
        cmd.add_argument("--endpoint-url", default="", help="S3-compatible endpoint")
        cmd.add_argument("--region", default="")
        cmd.add_argument("--git-rev", default="", help="stamped into manifest.json")
        cmd.add_argument(
            "--created-at", type=datetime.fromisoformat, help="stamped into manifest.json"
        )
        cmd.add_argument("--credentials-file", type=Path, help="root-only JSON file")
        if name == "download":
            cmd.add_argument("--version", required=True, help="the version the bundle must be")
            cmd.add_argument("--out", type=Path, required=True, help="directory to create")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        credentials = read_credentials(args.credentials_file) if args.credentials_file else {}
        fetcher = Fetcher(
            Remote.parse(args.url), s3_client(args.endpoint_url, args.region, credentials)
        )
        if args.command == "manifest":
            manifest, _ = read_manifest(fetcher, args.dir_md5, args.git_rev, args.created_at)
            sys.stdout.write(manifest_bytes(manifest).decode())
        else:
            manifest = download(
                fetcher, args.dir_md5, args.out, args.version, args.git_rev, args.created_at
            )
            result = {"version": manifest.version, "files": len(manifest.files) + 1}
            sys.stdout.write(json.dumps(result) + "\n")
    except FetchError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
