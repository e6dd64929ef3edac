#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Write build/qemu's changes back into the repository:
#   a file of the base that the tree changes -> edits/<path>.diff
#   a new file (untracked, not ignored)     -> <path>
# and remove the repository files the tree no longer needs.  Files are only
# written when their content changes, so a second run changes nothing.
# Afterwards the snapshot build/qemu.assembled records that tree and
# repository are in sync, so the next 'make' does not reassemble.
#
# Usage: refresh.sh [--check]
#   --check  change nothing; exit 1 naming the paths a refresh would change
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
me=refresh
# shellcheck source=scripts/lib.sh
. "$repo/scripts/lib.sh"

check=0
case ${1:-} in
    --check) check=1 ;;
    "") ;;
    *) die "usage: refresh.sh [--check]" ;;
esac

[ -d "$TREE/.git" ] && git -C "$TREE" rev-parse -q --verify base >/dev/null ||
    die "build/qemu is missing; run 'make' to assemble it first"

stage=$(mktemp -d)          # what the repository should hold
cur=$(mktemp -d)            # what it holds now
trap 'rm -rf "$stage" "$cur"' EXIT

# 1. What the tree asks the repository to hold.
tree_changes > "$stage/.changes"
outside=()
deleted=()
list=()
while IFS=$'\t' read -r st p; do
    case $st in
        M)  mkdir -p "$stage/edits/$(dirname "$p")"
            diff_base "$p" > "$stage/edits/$p.diff"
            list+=("edits/$p.diff") ;;
        A)  if ! is_qemu_path "$p"; then
                outside+=("$p")
                continue
            fi
            mkdir -p "$stage/$(dirname "$p")"
            cp "$TREE/$p" "$stage/$p"
            list+=("$p") ;;
        D)  deleted+=("$p") ;;
        *)  die "unexpected git status '$st' for build/qemu/$p" ;;
    esac
done < "$stage/.changes"
rm "$stage/.changes"
printf '%s\n' "${list[@]}" | sed '/^$/d' | LC_ALL=C sort > "$stage/.list"
if [ ${#outside[@]} -gt 0 ]; then
    die "new file(s) outside the QEMU paths the repository holds" \
        "($QEMU_TOP_DIRS $QEMU_TOP_FILES): ${outside[*]}; delete them from" \
        "build/qemu, or add the directory to QEMU_TOP_DIRS in scripts/lib.sh"
fi
if [ ${#deleted[@]} -gt 0 ]; then
    die "build/qemu deletes base file(s) ${deleted[*]}, which the series" \
        "format cannot express; restore with 'git -C build/qemu checkout" \
        "base -- <path>'"
fi

# 2. Has the repository changed since the tree was assembled (git pull,
# checkout, a hand edit)?  Then writing the tree back would undo that; the
# tree must catch up first.  Where both changed, the tree's version wins
# (that is what assemble.sh's conflict message offers).
write_snapshot "$cur"
behind=()
if [ -d "$TREE.assembled" ] && ! diff -r -q "$TREE.assembled" "$cur" >/dev/null; then
    tmp_o=$(mktemp); tmp_n=$(mktemp)
    for p in $(cat "$TREE.assembled/.list" "$cur/.list" | qemu_path | sort -u); do
        ro=0; desired "$TREE.assembled" "$p" "$tmp_o" 2>/dev/null || ro=$?
        rn=0; desired "$cur" "$p" "$tmp_n" 2>/dev/null || rn=$?
        if [ $rn = $ro ] && { [ $rn = 1 ] || cmp -s "$tmp_o" "$tmp_n"; }; then
            continue
        fi
        if [ $ro != 2 ] && tree_matches "$TREE.assembled" "$p" 2>/dev/null; then
            behind+=("$p")
        elif [ $check = 0 ] && ! tree_matches "$cur" "$p" 2>/dev/null; then
            echo "refresh: $p changed in both; keeping build/qemu's version"
        fi
    done
    rm -f "$tmp_o" "$tmp_n"
fi
if [ ${#behind[@]} -gt 0 ]; then
    die "the repository changed ${behind[*]} since build/qemu was assembled;" \
        "run 'make' to bring that into the tree first (refresh would undo it)"
fi

# 3. Compare and write.
changes=()
while read -r f; do
    cmp -s "$stage/$f" "$repo/$f" || changes+=("$f")
done < "$stage/.list"
stale=()
while read -r f; do
    [ -n "$f" ] && stale+=("$f")
done < <(LC_ALL=C comm -23 <(LC_ALL=C sort "$cur/.list") "$stage/.list")

if [ $check = 1 ]; then
    if [ ${#changes[@]} -gt 0 ] || [ ${#stale[@]} -gt 0 ]; then
        die "build/qemu and the repository differ:" \
            "${changes[*]}${stale[*]:+ (stale: ${stale[*]})};" \
            "run 'make refresh' to write the tree back"
    fi
    exit 0
fi

for f in "${changes[@]}"; do
    mkdir -p "$(dirname "$repo/$f")"
    cp "$stage/$f" "$repo/$f"
    echo "refresh: wrote $f"
done
for f in "${stale[@]}"; do
    rm -f "$repo/$f"
    d=$(dirname "$f")
    while [ "$d" != . ] && rmdir "$repo/$d" 2>/dev/null; do
        d=$(dirname "$d")
    done
    echo "refresh: removed $f"
done
replace_snapshot
if [ ${#changes[@]} = 0 ] && [ ${#stale[@]} = 0 ]; then
    echo "refresh: the repository already matches build/qemu"
fi
