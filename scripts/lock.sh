#!/usr/bin/env bash
# Re-pin requirements/*.txt from requirements/*.in. Run after editing a .in file, then commit both.
# Uses the machine's own pip configuration (index, mirrors, certificates).
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
header() { echo "# Pinned from requirements/$1.in by scripts/lock.sh. Do not edit by hand."; }

# The server lock is resolved for the oldest supported server Python (Ubuntu 22.04: 3.10) with wheels
# only, so every pin installs offline on 3.10, 3.11 and 3.12; pip resolves for that target without
# needing that interpreter here.
python3 -m venv "$tmp/resolver"
"$tmp/resolver/bin/pip" install -q --upgrade pip
platforms=(--platform manylinux2014_x86_64)
for minor in $(seq 17 35); do platforms+=(--platform "manylinux_2_${minor}_x86_64"); done
"$tmp/resolver/bin/pip" install -q --dry-run --ignore-installed --only-binary=:all: \
  --python-version 3.10 --implementation cp "${platforms[@]}" \
  --target "$tmp/target" --report "$tmp/server.json" -r requirements/server.in
{
  header server
  python3 -c '
import json, sys
items = json.load(open(sys.argv[1]))["install"]
for name, version in sorted((i["metadata"]["name"], i["metadata"]["version"]) for i in items):
    print(f"{name}=={version}")
' "$tmp/server.json"
} > requirements/server.txt
echo "requirements/server.txt: $(grep -c '==' requirements/server.txt) pins"

# The control node (workstation, CI) is resolved for the Python running this script.
python3 -m venv "$tmp/control"
"$tmp/control/bin/pip" install -q --upgrade pip
(cd requirements && "$tmp/control/bin/pip" install -q -r control.in)
{
  header control
  "$tmp/control/bin/pip" freeze --exclude-editable | grep -v -E '^(pip|setuptools)=='
} > requirements/control.txt
echo "requirements/control.txt: $(grep -c '==' requirements/control.txt) pins"
