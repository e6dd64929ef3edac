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
snap=$tree.assembled        # copy of the repo's files at the last assembly
# shellcheck source=/dev/null
. "$repo/qemu-base.conf"
. "$repo/scripts/lib.sh"

die() { echo "assemble: $*" >&2; exit 1; }

make_base() {
    local tmp
    tmp=$(mktemp -d "$(dirname "$tree")/.base.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    if [ -n "${QEMU_SRC:-}" ]; then
        [ -f "$QEMU_SRC/VERSION" ] && [ -f "$QEMU_SRC/hw/net/virtio-net.c" ] ||
            die "QEMU_SRC=$QEMU_SRC is not a QEMU source tree"
        echo "assemble: base from QEMU_SRC=$QEMU_SRC"
        if [ -d "$QEMU_SRC/.git" ]; then
            git -C "$QEMU_SRC" archive --format=tar HEAD | tar -x -C "$tmp"
            mkdir -p "$tmp/q" && mv "$tmp"/* "$tmp/q" 2>/dev/null || true
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
        printf '/build/\n' >> .git/info/exclude
        git add -A -f .
        GIT_AUTHOR_DATE="2000-01-01T00:00:00Z" \
            GIT_COMMITTER_DATE="2000-01-01T00:00:00Z" \
            git commit -q -m "base: $QEMU_PKG ${QEMU_SRC:-$QEMU_VERSION}"
        git tag base
    )
    mkdir -p "$(dirname "$tree")"
    mv "$tmp/q" "$tree"
    rm -rf "$tmp" "$snap"
    trap - EXIT
}

# Desired content of one QEMU path, from a repository snapshot dir $1.
# Writes it to $3 and returns 0, or returns 1 when the path is pristine base.
desired() {
    local src=$1 path=$2 out=$3
    if [ -f "$src/edits/$path.diff" ]; then
        if [ -n "$(git -C "$tree" ls-tree base -- "$path")" ]; then
            git -C "$tree" show "base:$path" > "$out"
        else
            : > "$out"
        fi
        if ! patch -s -f -p1 --no-backup-if-mismatch -r - "$out" \
                < "$src/edits/$path.diff" > "$out.rej" 2>&1; then
            echo "assemble: edits/$path.diff does not apply to $path:" >&2
            sed 's/^/    /' "$out.rej" >&2
            return 2
        fi
        rm -f "$out.rej"
        return 0
    fi
    if [ -f "$src/$path" ]; then
        cp "$src/$path" "$out"
        return 0
    fi
    return 1
}

[ -d "$tree/.git" ] && git -C "$tree" rev-parse -q --verify base >/dev/null ||
    { rm -rf "$tree" "$snap"; make_base; }

# What the repository holds now.
new=$(mktemp -d)
trap 'rm -rf "$new"' EXIT
repo_files > "$new.list"
while read -r f; do
    mkdir -p "$new/$(dirname "$f")"
    cp "$repo/$f" "$new/$f"
done < "$new.list"
mv "$new.list" "$new/.list"

if [ -d "$snap" ] && diff -r -q "$snap" "$new" >/dev/null; then
    exit 0      # repository unchanged since the last assembly: tree is ours
fi

# The repository changed.  Paths touched now or at the last assembly.
paths=$( { [ -d "$snap" ] && cat "$snap/.list"; cat "$new/.list"; } |
         qemu_path | sort -u)
tmpf=$(mktemp)
conflicts=()
for p in $paths; do
    # Did the developer change this path in the tree since the last assembly?
    if [ -d "$snap" ]; then
        if desired "$snap" "$p" "$tmpf"; then
            [ -f "$tree/$p" ] && cmp -s "$tmpf" "$tree/$p" || conflicts+=("$p")
        else
            [ $? = 2 ] && exit 1
            git -C "$tree" diff --quiet base -- "$p" 2>/dev/null &&
                [ -z "$(git -C "$tree" ls-files -o -- "$p")" ] ||
                conflicts+=("$p")
        fi
    fi
done
for p in "${conflicts[@]}"; do
    if desired "$new" "$p" "$tmpf" && cmp -s "$tmpf" "$tree/$p" 2>/dev/null; then
        continue
    fi
    die "build/qemu/$p was edited and the repository changed too;" \
        "run 'make refresh' (keeps the tree's version) or" \
        "'git -C build/qemu checkout base -- $p' (drops it), then 'make'"
done
for p in $paths; do
    if desired "$new" "$p" "$tmpf"; then
        if ! cmp -s "$tmpf" "$tree/$p" 2>/dev/null; then
            mkdir -p "$tree/$(dirname "$p")"
            cp "$tmpf" "$tree/$p"
        fi
    else
        [ $? = 2 ] && { rm -rf "$snap"; exit 1; }
        if [ -n "$(git -C "$tree" ls-tree base -- "$p")" ]; then
            git -C "$tree" diff --quiet base -- "$p" ||
                git -C "$tree" checkout -q base -- "$p"
        else
            rm -f "$tree/$p"
        fi
    fi
done
rm -f "$tmpf"
rm -rf "$snap"
mv "$new" "$snap"
trap - EXIT
echo "assemble: build/qemu matches the repository"
