#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Assemble build/qemu = pinned base (first commit, tag 'base') + edits/**.diff
# + our new files.  Incremental: an existing tree is only touched where the
# repository changed since the last assembly, so ninja rebuilds only what
# depends on it.  Edits made in build/qemu itself are never overwritten:
# 'make refresh' writes them back to the repository.
#
# Usage: assemble.sh CACHE_DIR TREE      (QEMU_SRC=dir uses that checkout)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cache=${1:?usage: assemble.sh CACHE_DIR TREE}
tree=${2:?usage: assemble.sh CACHE_DIR TREE}
mkdir -p "$(dirname "$tree")"
tree=$(cd "$(dirname "$tree")" && pwd)/$(basename "$tree")
snap=$tree.assembled        # copy of the repo's files at the last assembly
# shellcheck source=/dev/null
. "$repo/qemu-base.conf"
me=assemble
. "$repo/scripts/lib.sh"
TREE=$tree

make_base() {
    local tmp
    mkdir -p "$(dirname "$tree")"
    tmp=$(mktemp -d "$(dirname "$tree")/.base.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    if [ -n "${QEMU_SRC:-}" ]; then
        [ -f "$QEMU_SRC/VERSION" ] && [ -f "$QEMU_SRC/hw/net/virtio-net.c" ] ||
            die "QEMU_SRC=$QEMU_SRC is not a QEMU source tree"
        echo "assemble: base from QEMU_SRC=$QEMU_SRC"
        if [ -d "$QEMU_SRC/.git" ]; then
            mkdir "$tmp/q"
            git -C "$QEMU_SRC" archive --format=tar HEAD | tar -x -C "$tmp/q"
        else
            cp -a "$QEMU_SRC" "$tmp/q"
            rm -rf "$tmp/q/build" "$tmp/q/.git"
        fi
    else
        echo "assemble: unpacking $QEMU_PKG $QEMU_VERSION"
        local dsc=${QEMU_FILES%% *}
        dpkg-source -q -x "$cache/$dsc" "$tmp/q" >/dev/null 2>"$tmp/err" || {
            cat "$tmp/err" >&2
            die "dpkg-source -x failed; run 'make distclean' and 'make' to refetch"
        }
        rm -rf "$tmp/q/.pc"
    fi
    (
        cd "$tmp/q"
        git init -q
        git config user.name "virtio-net-rsc assemble"
        git config user.email "assemble@localhost"
        git config core.autocrlf false
        git config gc.auto 0
        printf '/build/\n/build-*/\n' >> .git/info/exclude
        git add -A -f .
        GIT_AUTHOR_DATE="2000-01-01T00:00:00Z" \
            GIT_COMMITTER_DATE="2000-01-01T00:00:00Z" \
            git commit -q -m "$base_subject"
        git tag base
    )
    mv "$tmp/q" "$tree"
    rm -rf "$tmp" "$snap"
    trap - EXIT
}

# Which base the tree must have: the Debian package, or QEMU_SRC.
if [ -n "${QEMU_SRC:-}" ]; then
    QEMU_SRC=$(cd "$QEMU_SRC" 2>/dev/null && pwd) ||
        die "QEMU_SRC=$QEMU_SRC does not exist; point it at a QEMU checkout"
fi
base_subject="base: $QEMU_PKG ${QEMU_SRC:-$QEMU_VERSION}"

if [ -d "$tree/.git" ] && git -C "$tree" rev-parse -q --verify base >/dev/null; then
    have=$(git -C "$tree" log -1 --format=%s base)
    if [ "$have" != "$base_subject" ]; then
        die "build/qemu was assembled from '${have#base: }', not" \
            "'${base_subject#base: }'; run 'make refresh' to keep its edits," \
            "then 'make clean' and 'make' again"
    fi
else
    rm -rf "$tree" "$snap"
    make_base
fi

tmpf=$(mktemp)
new=$(mktemp -d)            # the repository now
stage=$(mktemp -d)          # the tree content it asks for
trap 'rm -rf "$tmpf" "$new" "$stage"' EXIT
write_snapshot "$new"
old=$snap                   # what the tree was last synchronised with
if [ ! -d "$snap" ]; then
    old=$(mktemp -d)        # fresh tree (or lost snapshot): as if empty
    : > "$old/.list"
    trap 'rm -rf "$tmpf" "$new" "$stage" "$old"' EXIT
elif diff -r -q "$snap" "$new" >/dev/null; then
    exit 0      # repository unchanged since the last assembly: tree is ours
fi

# The repository changed.  Compute everything before touching the tree, so an
# edit that does not apply leaves the tree and the snapshot as they were.
paths=$(cat "$old/.list" "$new/.list" | qemu_path | sort -u)
apply=()
conflicts=()
for p in $paths; do
    mkdir -p "$stage/$(dirname "$p")"
    rn=0; desired "$new" "$p" "$stage/$p" || rn=$?
    [ $rn = 2 ] && die "fix edits/$p.diff in the repository (the hunk above), then 'make'"
    ro=0; desired "$old" "$p" "$tmpf" 2>/dev/null || ro=$?
    if [ $rn = $ro ] && { [ $rn = 1 ] || cmp -s "$tmpf" "$stage/$p"; }; then
        continue    # the repository did not change this path
    fi
    if [ $ro != 2 ] && tree_matches "$old" "$p"; then
        apply+=("$p")           # the tree did not change it either: update
    elif tree_matches "$new" "$p"; then
        continue                # the tree already has the new version
    elif [ ! -e "$tree/$p" ]; then
        apply+=("$p")           # removed from the tree: take the repository's
    else
        conflicts+=("$p")
    fi
done
if [ ${#conflicts[@]} -gt 0 ]; then
    die "build/qemu edits ${conflicts[*]} and the repository changed them too;" \
        "run 'make refresh' to keep the tree's version, or 'rm build/qemu/<path>'" \
        "to take the repository's, then 'make'"
fi
for p in "${apply[@]}"; do
    if [ -f "$stage/$p" ]; then
        mkdir -p "$tree/$(dirname "$p")"
        cp "$stage/$p" "$tree/$p"
    elif [ -n "$(git -C "$tree" ls-tree base -- "$p")" ]; then
        git -C "$tree" checkout -q base -- "$p"
    else
        rm -f "$tree/$p"
    fi
done
rm -rf "$snap"
mv "$new" "$snap"
echo "assemble: ${tree#"$repo"/} matches the repository (${#apply[@]} path(s) updated)"
