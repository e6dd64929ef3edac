#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# make series-check: apply out/series/*.patch with git am onto a clean
# checkout of the base, build every commit (bisectability), run the RSC
# unit test and qtest on the last one, and run checkpatch.pl --strict on
# every patch: 0 errors and 0 warnings.  Works in out/series-check/.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
me=series-check
# shellcheck source=scripts/lib.sh
. "$repo/scripts/lib.sh"

series=$repo/out/series
work=$repo/out/series-check
[ -d "$TREE/.git" ] || die "build/qemu is missing; run 'make' first"
ls "$series"/0001-*.patch >/dev/null 2>&1 ||
    die "no patches in out/series; run 'make series' first"

fail=0
for p in "$series"/0*.patch; do
    case $p in */0000-cover-letter.patch) continue ;; esac
    out=$("$TREE/scripts/checkpatch.pl" --strict --no-signoff "$p" 2>&1 || true)
    summary=$(printf '%s\n' "$out" | grep -E '^total:' || true)
    if ! printf '%s\n' "$summary" | grep -q '^total: 0 errors, 0 warnings'; then
        printf '%s\n' "$out" | grep -E '^(ERROR|WARNING)' -A 3 >&2 || true
        echo "series-check: $(basename "$p"): $summary" >&2
        fail=1
    else
        echo "series-check: checkpatch $(basename "$p"): $summary"
    fi
done

if [ ! -d "$work/qemu/.git" ]; then
    rm -rf "$work"
    mkdir -p "$work"
    git clone -q --shared --no-checkout "$TREE" "$work/qemu"
fi
cd "$work/qemu"
git checkout -q -f --detach base
git clean -q -fdx -e /build/
patches=()
for p in "$series"/0*.patch; do
    case $p in */0000-cover-letter.patch) ;; *) patches+=("$p") ;; esac
done
git am -q --keep-cr "${patches[@]}" 2>"$work/am.log" || {
    git am --abort >/dev/null 2>&1 || true
    cat "$work/am.log" >&2
    die "the series does not apply with git am onto base; see above"
}
commits=$(git rev-list --reverse base..HEAD)
n=0
for c in $commits; do
    n=$((n + 1))
    git checkout -q -f "$c"
    echo "series-check: building commit $n: $(git log -1 --format=%s "$c")"
    "$repo/scripts/build.sh" "$work/qemu" build >/dev/null ||
        die "commit $n ($(git log -1 --format=%h "$c")) does not build"
done
cd build
for t in tests/unit/test-virtio-net-rsc tests/qtest/virtio-net-rsc-test; do
    [ -x "$t" ] || die "$t was not built by the last commit"
    QTEST_QEMU_BINARY=./qemu-system-x86_64 "./$t" --tap > "$work/test.log" 2>&1 ||
        { grep -E '^not ok|ERROR' "$work/test.log" >&2; die "$t failed on the last commit"; }
    echo "series-check: $t: $(grep -c '^ok ' "$work/test.log") passed"
done
[ "$fail" = 0 ] || die "checkpatch found problems in the patches above"
echo "series-check: $n commits apply, build and pass; checkpatch clean"
