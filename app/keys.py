"""Make an API key: ``python -m app.keys new NAME [--scopes predict,model]``.

Prints the key (give it to the client; it is not stored anywhere) and the line to add to the
key file (``/etc/berth/api-keys``, or the app role's ``app_api_keys`` vault variable).
"""

from __future__ import annotations

import argparse
import secrets
import sys

from app.services.auth import _NAME, SCOPES, hash_key

KEY_PREFIX = "berth_"


def new_key() -> str:
    """A random key with 256 bits of entropy."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.keys", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    new = commands.add_parser("new", help="make a key and print it with its key-file line")
    new.add_argument("name", help="who the key is for (letters, digits, . _ @ -)")
    new.add_argument("--scopes", default=",".join(SCOPES), help="comma-separated: predict,model")
    hashed = commands.add_parser("hash", help="print the sha256 of a key read from stdin")
    hashed.set_defaults(name=None)
    args = parser.parse_args(argv)
    if args.command == "hash":
        sys.stdout.write(hash_key(sys.stdin.readline().strip()) + "\n")
        return 0
    scopes = set(args.scopes.split(","))
    if not _NAME.match(args.name) or not scopes <= set(SCOPES):
        parser.error(f"NAME must match {_NAME.pattern}; scopes must be from {','.join(SCOPES)}")
    key = new_key()
    sys.stdout.write(f"key:  {key}\n")
    sys.stdout.write(f"line: {args.name} {hash_key(key)} {','.join(sorted(scopes))}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
