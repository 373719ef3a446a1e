#!/usr/bin/env bash
# Re-pin requirements/*.txt from requirements/*.in. Run after editing a .in file, then commit both.
# Uses the machine's own pip configuration (index, mirrors, certificates).
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

pin() {  # pin NAME: resolve requirements/NAME.in in a clean venv, write requirements/NAME.txt
  local name=$1
  python3 -m venv "$tmp/$name"
  "$tmp/$name/bin/pip" install -q --upgrade pip
  (cd requirements && "$tmp/$name/bin/pip" install -q -r "$name.in")
  {
    echo "# Pinned from requirements/$name.in by scripts/lock.sh. Do not edit by hand."
    "$tmp/$name/bin/pip" freeze --exclude-editable | grep -v -E '^(pip|setuptools)=='
  } > "requirements/$name.txt"
  echo "requirements/$name.txt: $(grep -c '==' "requirements/$name.txt") pins"
}

pin server
pin control
