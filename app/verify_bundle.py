"""Check a model bundle with the server's own runtime before it is switched in.

Usage: python -m app.verify_bundle BUNDLE_DIR
Verifies file hashes, refuses unsafe files, loads the model and replays the golden pairs
(``load_bundle``). Prints {"version": ...} and exits 0, or prints the reason and exits 1.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from app.services.model_store import BundleError, load_bundle


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.stderr.write("usage: python -m app.verify_bundle BUNDLE_DIR\n")
        return 2
    try:
        model = load_bundle(Path(args[0]))
    except BundleError as exc:
        sys.stderr.write(f"bundle refused: {exc}\n")
        return 1
    sys.stdout.write(json.dumps({"version": model.version}) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
