#!/usr/bin/env bash
# Install the control node's Debian packages listed in requirements/apt.txt, if any is missing.
# Quiet when everything is present. Uses the machine's own apt configuration (mirror, proxy).
# apt-cacher-ng's postinst may start its own daemon on port 3142; the test VPS tool runs its
# own instance there, so that system daemon is kept from starting (or stopped) and disabled.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "install-system-deps.sh: must run as root (apt-get install)" >&2
  exit 1
fi

mapfile -t wanted < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' requirements/apt.txt | grep -v '^$')
missing=()
for pkg in "${wanted[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
  [ "$status" = installed ] || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive

# Keep maintainer scripts from starting daemons (apt-cacher-ng) unless a policy already exists.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"
  chmod 755 "$policy"
  trap 'rm -f "$policy"' EXIT
fi

apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null

# If the system apt-cacher-ng runs anyway (e.g. under systemd), stop it and keep it off.
if [ -x /etc/init.d/apt-cacher-ng ]; then
  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    systemctl disable --now apt-cacher-ng >/dev/null 2>&1 || true
  else
    /etc/init.d/apt-cacher-ng stop >/dev/null 2>&1 || true
    update-rc.d apt-cacher-ng disable >/dev/null 2>&1 || true
  fi
fi
echo "installed: ${missing[*]}"
