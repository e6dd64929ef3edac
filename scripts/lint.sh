#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Lint the series: QEMU's own scripts/checkpatch.pl over everything
# build/qemu changes relative to 'base' (edited files and new files, as one
# patch), and "refresh would change nothing".  Any checkpatch ERROR or
# WARNING fails.  The tree's index is left alone (a temporary one is used).
#
# Usage: lint.sh        (out/lint.patch keeps the patch that was checked)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
me=lint
# shellcheck source=scripts/lib.sh
. "$repo/scripts/lib.sh"

ensure_tree

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The patch: the tree against base, new files included via intent-to-add in
# a copy of the index.
cp "$TREE/.git/index" "$tmp/index"
new=()
while IFS=$'\t' read -r st p; do
    [ "$st" = A ] && new+=("$p")
done < <(tree_changes)
if [ ${#new[@]} -gt 0 ]; then
    GIT_INDEX_FILE=$tmp/index git -C "$TREE" add -N -- "${new[@]}"
fi
GIT_INDEX_FILE=$tmp/index diff_base > "$tmp/lint.patch"
mkdir -p "$repo/out"
cp "$tmp/lint.patch" "$repo/out/lint.patch"

fail=0
if [ ! -s "$tmp/lint.patch" ]; then
    echo "lint: build/qemu has no changes against base; nothing for checkpatch"
else
    rc=0
    (cd "$TREE" && perl scripts/checkpatch.pl --no-signoff --strict --no-color \
        --root="$TREE" "$tmp/lint.patch") > "$tmp/checkpatch.out" 2>&1 || rc=$?
    errors=$(grep -c '^ERROR:' "$tmp/checkpatch.out" || true)
    warnings=$(grep -c '^WARNING:' "$tmp/checkpatch.out" || true)
    if [ "$errors" != 0 ] || [ "$warnings" != 0 ] || [ $rc != 0 ]; then
        # The findings, without checkpatch's closing boilerplate.
        sed -n '/^total: /q;p' "$tmp/checkpatch.out"
        echo "lint: checkpatch: $errors error(s), $warnings warning(s)" \
             "(exit $rc) in out/lint.patch; fix them in build/qemu, then 'make lint'"
        fail=1
    else
        echo "lint: checkpatch: clean ($(grep -c '^+' "$tmp/lint.patch") added lines)"
    fi
fi

if "$repo/scripts/refresh.sh" --check; then
    echo "lint: refresh: the repository matches build/qemu"
else
    fail=1
fi
[ $fail = 0 ] || die "failed; see above"
