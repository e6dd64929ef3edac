#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# make uninstall: remove exactly what 'make install' put into $DESTDIR$PREFIX
# (the paths in its share/virtio-net-rsc/manifest), then the directories
# that are left empty.  Nothing else is touched.
# Environment: PREFIX (default /usr/local), DESTDIR (default empty).
set -euo pipefail
me=uninstall
trap 'rc=$?; echo "$me: unexpected failure (exit $rc) at line $LINENO: $BASH_COMMAND; fix the cause above and rerun" >&2' ERR
die() { echo "$me: $*" >&2; exit 1; }

prefix=${PREFIX:-/usr/local}
case $prefix in
    /*) prefix=$(realpath -m "$prefix") ;;
    *) die "PREFIX=$prefix is not an absolute path; give the one 'make install' used" ;;
esac
dest=${DESTDIR:-}$prefix
man=$dest/share/virtio-net-rsc/manifest

if [ ! -f "$man" ]; then
    echo "uninstall: nothing to do: $man does not exist (no 'make install" \
         "PREFIX=$prefix' there)"
    exit 0
fi
if [ ! -w "$dest/share/virtio-net-rsc" ]; then
    [ "$(id -u)" = 0 ] && die "$dest is not writable even for root; check the mount"
    args=""
    [ "$prefix" = /usr/local ] || args+=" PREFIX=$prefix"
    [ -z "${DESTDIR:-}" ] || args+=" DESTDIR=$DESTDIR"
    die "cannot remove files from $dest (not writable); run 'sudo make uninstall$args'"
fi

n=0
dirs=()
while IFS= read -r f; do
    case $f in
        ""|/*|../*|*/../*|..) die "manifest line '$f' is not a path under $dest;" \
                                  "remove the files by hand" ;;
    esac
    if [ -e "$dest/$f" ] || [ -L "$dest/$f" ]; then
        [ -d "$dest/$f" ] && [ ! -L "$dest/$f" ] &&
            die "$dest/$f is a directory now, not what 'make install' wrote;" \
                "remove it by hand, then rerun 'make uninstall'"
        rm -f "$dest/$f"
        n=$((n + 1))
    fi
    dirs+=("$(dirname "$f")")
done < <(grep -v "^share/virtio-net-rsc/manifest$" "$man")
rm -f "$man"
# The directories the files were in, deepest first, while they are empty.
while IFS= read -r d; do
    while [ "$d" != . ] && rmdir "$dest/$d" 2>/dev/null; do
        d=$(dirname "$d")
    done
done < <(printf '%s\n' "${dirs[@]}" share/virtio-net-rsc | LC_ALL=C sort -ru)
echo "uninstall: removed $n files from $dest"
