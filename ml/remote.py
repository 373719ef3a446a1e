"""Configure the DVC remote: ``python -m ml.remote s3 --bucket B`` or ``... local``.

``s3`` runs ``dvc remote add/modify`` so that:

- the remote itself (URL, endpoint, region, ``verify = true``) is in the committed
  ``.dvc/config``, so teammates and CI share it;
- it is the default for this checkout (``.dvc/config.local``); ``--project-default`` makes it
  the default in ``.dvc/config`` instead, for everyone who pulls that commit;
- credentials go only to ``.dvc/config.local`` (git-ignored; ``--credentials-from-env`` copies
  ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_SESSION_TOKEN`` there), or stay in the
  environment or an AWS profile where DVC's S3 client finds them by itself. A secret that would
  land in the committed file, or on the command line at all, is refused.

``local`` makes the local-directory remote (``local``, ``../.dvc-storage``) this checkout's
default again. The local remote is never removed: it is the default for users without a cloud
account. See ``docs/model-versions.md``.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from ml.stage import StageError

# DVC's S3 options that hold a secret or point at one; never written to the committed config.
CREDENTIAL_OPTIONS = frozenset(
    {
        "access_key_id",
        "secret_access_key",
        "session_token",
        "sse_customer_key",
        "profile",
        "credentialpath",
        "configpath",
    }
)
# Environment variables copied to .dvc/config.local by --credentials-from-env.
ENV_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "access_key_id",
    "AWS_SECRET_ACCESS_KEY": "secret_access_key",
    "AWS_SESSION_TOKEN": "session_token",
}
LOCAL_REMOTE = "local"
# S3 bucket naming rules (general purpose buckets): 3-63 characters, lower case, digits, dots
# and hyphens, starting and ending with a letter or digit.
BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
PREFIX_RE = re.compile(r"^[A-Za-z0-9._/-]*$")
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


class RemoteError(StageError):
    """The remote cannot be configured as asked; the message says why and what to do."""


@dataclass(frozen=True)
class S3Remote:
    """Everything ``python -m ml.remote s3`` writes, split by the file it goes to."""

    bucket: str
    prefix: str = ""
    endpoint_url: str | None = None
    region: str | None = None
    name: str = "s3"
    profile: str | None = None
    options: Mapping[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        prefix = self.prefix.strip("/")
        return f"s3://{self.bucket}/{prefix}" if prefix else f"s3://{self.bucket}"

    def validate(self) -> None:
        if not NAME_RE.match(self.name) or self.name == LOCAL_REMOTE:
            raise RemoteError(
                f"remote name {self.name!r} must match {NAME_RE.pattern} and not be "
                f"'{LOCAL_REMOTE}' (the local-directory remote stays as it is)"
            )
        if not BUCKET_RE.match(self.bucket) or ".." in self.bucket:
            raise RemoteError(
                f"--bucket {self.bucket!r} is not an S3 bucket name (3-63 characters: lower case "
                "letters, digits, '.', '-'). Give the bare name, no s3:// and no credentials."
            )
        if not PREFIX_RE.match(self.prefix) or ".." in self.prefix.split("/"):
            raise RemoteError(
                f"--prefix {self.prefix!r} may contain only letters, digits and . _ - /"
            )
        if self.endpoint_url is not None:
            parts = urlsplit(self.endpoint_url)
            if parts.username is not None or parts.password is not None:
                raise RemoteError(
                    "--endpoint-url contains credentials (user:secret@host); they would be "
                    "written to the committed .dvc/config. Give the URL without them and put the "
                    "keys in the environment (see --credentials-from-env)."
                )
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise RemoteError(
                    f"--endpoint-url {self.endpoint_url!r} must be http(s)://host[:port]"
                )
        for option in self.options:
            if option in CREDENTIAL_OPTIONS:
                raise RemoteError(
                    f"-o {option}=... would write a credential to the committed .dvc/config. "
                    "Use --profile, or export AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (and "
                    "AWS_SESSION_TOKEN) and add --credentials-from-env to keep them in "
                    ".dvc/config.local, which git ignores."
                )
            if option in ("url", "endpointurl", "region", "verify"):
                raise RemoteError(f"-o {option}=... is set by its own flag; drop it")

    def project_settings(self) -> dict[str, str]:
        """Options for the committed ``.dvc/config``: no credentials."""
        settings = {"verify": "true"}
        if self.endpoint_url:
            settings["endpointurl"] = self.endpoint_url
        if self.region:
            settings["region"] = self.region
        settings.update(self.options)
        return settings


def credentials_from_env(environ: Mapping[str, str]) -> dict[str, str]:
    """DVC options for the AWS credentials in ``environ``; both keys are required."""
    found = {option: environ[var] for var, option in ENV_CREDENTIALS.items() if environ.get(var)}
    if "access_key_id" not in found or "secret_access_key" not in found:
        raise RemoteError(
            "--credentials-from-env needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the "
            "environment"
        )
    return found


def find_root(start: Path) -> Path:
    """The DVC project root at or above ``start``."""
    for candidate in (start, *start.parents):
        if (candidate / ".dvc").is_dir():
            return candidate
    raise RemoteError(f"{start} is not inside a DVC project (no .dvc directory); run dvc init")


def require_ignored(root: Path, relative: str) -> None:
    """Refuse to write secrets to ``relative`` unless git ignores it."""
    try:
        result = subprocess.run(
            ["git", "check-ignore", "--quiet", "--", relative],
            cwd=root,
            capture_output=True,
            timeout=30,
            check=False,
        )
    except OSError as exc:
        raise RemoteError(f"cannot run git to check that {relative} is ignored: {exc}") from exc
    if result.returncode != 0:
        raise RemoteError(
            f"{relative} is not ignored by git, so credentials written there could be committed. "
            "Add it to .gitignore (dvc init does) or leave the credentials in the environment."
        )


@contextmanager
def _in_dir(path: Path) -> Iterator[None]:
    cwd = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(cwd)


def dvc(root: Path, *args: str, secret: bool = False) -> None:
    """Run one ``dvc`` command in this process, so no secret appears in a process list."""
    from dvc.cli import main as dvc_main

    shown = " ".join((*args[:-1], "***")) if secret else " ".join(args)
    sys.stderr.write(f"+ dvc {shown}\n")
    with _in_dir(root):  # dvc's config commands act on the project of the working directory
        code = dvc_main(list(args))
    if code != 0:
        raise RemoteError(f"`dvc {shown}` failed with exit code {code}")


def configure_s3(
    root: Path,
    remote: S3Remote,
    *,
    credentials: Mapping[str, str] | None = None,
    project_default: bool = False,
) -> None:
    """Add (or replace) the S3 remote and make it the default; see the module docstring."""
    remote.validate()
    if credentials or remote.profile:
        require_ignored(root, ".dvc/config.local")
    dvc(root, "remote", "add", "--force", remote.name, remote.url)
    for option, value in remote.project_settings().items():
        dvc(root, "remote", "modify", remote.name, option, value)
    # Drop per-user settings a previous run left for this name, then write the current ones.
    for option in sorted(CREDENTIAL_OPTIONS):
        dvc(root, "remote", "modify", "--local", "--unset", remote.name, option)
    if remote.profile:
        dvc(root, "remote", "modify", "--local", remote.name, "profile", remote.profile)
    for option, value in sorted((credentials or {}).items()):
        dvc(root, "remote", "modify", "--local", remote.name, option, value, secret=True)
    local_config = root / ".dvc" / "config.local"
    if local_config.exists():
        local_config.chmod(0o600)  # readable by this user only
    if project_default:
        dvc(root, "remote", "default", "--local", "--unset")
        dvc(root, "remote", "default", "--project", remote.name)
    else:
        dvc(root, "remote", "default", "--local", remote.name)
    check_no_secrets(root / ".dvc" / "config", (credentials or {}).values())


def use_local(root: Path) -> None:
    """Make the local-directory remote this checkout's default again."""
    dvc(root, "remote", "default", "--local", "--unset")
    dvc(root, "remote", "default", "--project", LOCAL_REMOTE)


def check_no_secrets(config: Path, secrets: Iterable[str]) -> None:
    """Last line of defence: the committed config names no credential option and no secret."""
    text = config.read_text(encoding="utf-8") if config.exists() else ""
    for option in CREDENTIAL_OPTIONS:
        if re.search(rf"^\s*{option}\s*=", text, re.MULTILINE):
            raise RemoteError(f"{config} contains '{option}'; remove it before committing")
    for value in secrets:
        if value and value in text:
            raise RemoteError(f"{config} contains a credential value; remove it before committing")


def _option(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m ml.remote",
        description="Configure the DVC remote (docs/model-versions.md).",
    )
    sub = p.add_subparsers(dest="command", required=True)
    s3 = sub.add_parser("s3", help="add an S3 (or S3-compatible) remote and make it the default")
    s3.add_argument("--bucket", required=True, help="bucket name, e.g. acme-berth-models")
    s3.add_argument("--prefix", default="dvc", help="key prefix inside the bucket (default dvc)")
    s3.add_argument("--endpoint-url", help="S3-compatible endpoint, e.g. https://minio.lan:9000")
    s3.add_argument("--region", help="bucket region, e.g. eu-central-1")
    s3.add_argument("--name", default="s3", help="DVC remote name (default s3)")
    s3.add_argument("--profile", help="AWS profile (~/.aws), stored in .dvc/config.local")
    s3.add_argument(
        "--credentials-from-env",
        action="store_true",
        help="copy AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN to .dvc/config.local",
    )
    s3.add_argument(
        "--project-default",
        action="store_true",
        help="make it the default in the committed .dvc/config, not only in this checkout",
    )
    s3.add_argument(
        "-o",
        "--option",
        action="append",
        type=_option,
        default=[],
        metavar="KEY=VALUE",
        help="another DVC S3 option for .dvc/config (e.g. sse=AES256); never a credential",
    )
    # Accepted only to refuse them with a useful message instead of "unrecognized arguments".
    for flag in ("--access-key-id", "--secret-access-key", "--session-token"):
        s3.add_argument(flag, dest="argv_secret", action="append", help=argparse.SUPPRESS)
    sub.add_parser("local", help="make the local-directory remote the default again")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        root = find_root(Path.cwd())
        if args.command == "local":
            use_local(root)
            return 0
        if args.argv_secret:
            raise RemoteError(
                "credentials are not accepted on the command line: they would stay in shell "
                "history and process lists, and nothing here writes them to a committed file. "
                "Export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (DVC reads them), and add "
                "--credentials-from-env to keep them in .dvc/config.local; or use --profile."
            )
        remote = S3Remote(
            bucket=args.bucket,
            prefix=args.prefix,
            endpoint_url=args.endpoint_url,
            region=args.region,
            name=args.name,
            profile=args.profile,
            options=dict(args.option),
        )
        credentials = credentials_from_env(os.environ) if args.credentials_from_env else None
        configure_s3(root, remote, credentials=credentials, project_default=args.project_default)
    except RemoteError as exc:
        sys.stderr.write(f"ml.remote: error: {exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
