#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Add the apt entries the build needs, derived from the machine's own Debian
# sources: bookworm-backports (meson >= 1.5, python3-pycotap) and deb-src for
# sid (where the pinned qemu source package lives).  No host name is written
# here: URIs and keyring are copied from the existing debian.sources entry.
set -euo pipefail

out=/etc/apt/sources.list.d/virtio-net-rsc.sources
if [ "$(id -u)" != 0 ]; then
    echo "apt-sources: not root; run 'sudo $0' (adds backports and deb-src entries)" >&2
    exit 1
fi
if [ -f "$out" ]; then
    exit 0
fi

src=""
for f in /etc/apt/sources.list.d/*.sources; do
    if grep -qE '^Suites:.*\bbookworm\b' "$f" 2>/dev/null; then
        src=$f
        break
    fi
done
uri=""; keyring=""
if [ -n "$src" ]; then
    # First stanza that carries the plain 'bookworm' suite.
    eval "$(awk '
        /^$/ { if (hit) exit; uri=""; key="" }
        /^URIs:/ { uri=$2 }
        /^Signed-By:/ { key=$2 }
        /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == "bookworm") hit=1 }
        END { if (hit) printf "uri=%s; keyring=%s\n", uri, key }' "$src")"
fi
if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
    uri=$(awk '$1 == "deb" && $3 == "bookworm" { for (i = 2; i <= NF; i++)
            if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' /etc/apt/sources.list)
fi
if [ -z "$uri" ]; then
    echo "apt-sources: no Debian 'bookworm' entry found in /etc/apt; add one, then rerun 'make deps'" >&2
    exit 1
fi
keyring=${keyring:-/usr/share/keyrings/debian-archive-keyring.gpg}

tmp=$(mktemp)
cat > "$tmp" <<EOT
# Added by virtio-net-rsc scripts/apt-sources.sh (derived from $src)
Types: deb
URIs: $uri
Suites: bookworm-backports
Components: main
Signed-By: $keyring

Types: deb-src
URIs: $uri
Suites: sid
Components: main
Signed-By: $keyring
EOT
mv "$tmp" "$out"
chmod 644 "$out"
# Never pull binaries from sid: deb-src only, but pin anyway to be safe.
cat > /etc/apt/preferences.d/virtio-net-rsc <<EOT
Package: *
Pin: release a=bookworm-backports
Pin-Priority: 100
EOT
echo "apt-sources: added $out"
