#!/bin/sh
# What a server looks like, for comparing before site.yml and after teardown.yml (run as root).
# Sections: packages, users, groups, listening ports, enabled units, files (path + sha256 under /etc).
set -eu
echo "## packages"
dpkg-query -W -f '${db:Status-Abbrev} ${Package}\n' | awk '$1 != "un" {print $1, $2}' | sort
echo "## users"
getent passwd | cut -d: -f1,3,6,7 | sort
echo "## groups"
getent group | cut -d: -f1,3,4 | sort
echo "## listening"
ss -Hlntu | awk '{print $1, $5}' | sort -u
echo "## enabled-units"
systemctl list-unit-files --state=enabled,static-enabled --no-legend --plain 2>/dev/null | awk '{print $1}' | sort
echo "## files"
# Volatile state that changes on any machine over time (apt lists, dpkg database, systemd timer stamps,
# random seeds, caches) is left out: the package list above covers what dpkg knows.
find /etc /srv /var/lib /opt -xdev \
  \( -path /var/lib/apt -o -path /var/lib/dpkg -o -path /var/lib/systemd -o -path /var/lib/ucf/cache \
     -o -path /etc/ld.so.cache -o -path /var/lib/dhcp -o -path /var/lib/private \) -prune \
  -o -type f -path '/etc/*' -printf 'f %p ' -exec sh -c 'sha256sum "$1" | cut -c1-16' _ {} \; \
  -o -printf '%y %p\n' | sort
