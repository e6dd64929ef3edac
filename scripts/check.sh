#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Run the test suites against the built tree ('make check' runs 'make'
# first), print one summary line per suite and, last, exactly one line
# "N passed, N failed, N skipped".  Exits 1 on any failure.
#
# glib test binaries run with --tap: each "ok" passes, "not ok" fails,
# "# SKIP"/"# TODO" is skipped, and a crash, a non-zero exit or a run with no
# tests at all is one more failure.  A binary that build.ninja does not know
# yet is skipped; once build.ninja has it, it must exist and run.
# Logs: build/check/<suite>.log.
#
# Usage: check.sh [SUITE...]     (default: all suites, in order)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
me=check
# shellcheck source=scripts/lib.sh
. "$repo/scripts/lib.sh"

# The suites, in order.  Add one line to register another:
#   glib NAME BINARY [ARGS]    a glib test binary, relative to the build dir
#   qos  NAME REGEX            the qos-test paths matching REGEX (required)
#   cmd  NAME COMMAND...       a command from the repository root; 1 test
suites() {
    glib unit-rsc       tests/unit/test-virtio-net-rsc
    glib unit-rsc-gro   tests/unit/test-virtio-net-rsc-gro
    glib qtest-rsc      tests/qtest/virtio-net-rsc-test
    glib qtest-rsc-mq   tests/qtest/virtio-net-rsc-mq-test
    glib qtest-rsc-gro  tests/qtest/virtio-net-rsc-gro-test
    cmd  demo           scripts/demo.sh
    qos  qos-virtio-net '^/x86_64/pc/.*/virtio-net[^/]*/'
    cmd  guest          scripts/guest.sh check
    cmd  lint           scripts/lint.sh
    cmd  docs           scripts/docs.sh
    cmd  fuzz           scripts/fuzz.sh
}

bdir=$TREE/build
logs=$repo/build/check
timeout=${CHECK_TIMEOUT:-900}
[ -f "$bdir/build.ninja" ] ||
    die "build/qemu/build is not configured; run 'make check' (it builds first)"
[ -x "$bdir/qemu-system-x86_64" ] ||
    die "build/qemu/build/qemu-system-x86_64 is missing; run 'make check'"
mkdir -p "$logs"
export QTEST_QEMU_BINARY=./qemu-system-x86_64

only=("$@")
total_pass=0 total_fail=0 total_skip=0

wanted() {
    local n
    [ ${#only[@]} = 0 ] && return 0
    for n in "${only[@]}"; do
        [ "$n" = "$1" ] && return 0
    done
    return 1
}

# report NAME PASS FAIL SKIP SECONDS [NOTE]: one summary line, add to totals.
report() {
    local name=$1 p=$2 f=$3 s=$4 secs=$5 note=${6:-}
    total_pass=$((total_pass + p))
    total_fail=$((total_fail + f))
    total_skip=$((total_skip + s))
    printf 'check: %-16s %3d passed, %d failed, %d skipped  (%ss)%s\n' \
        "$name" "$p" "$f" "$s" "$secs" "${note:+  $note}"
}

# run_tap NAME LOG COMMAND...: run a glib binary from the build dir, count.
run_tap() {
    local name=$1 log=$2 rc=0 start p f s plan note=""
    shift 2
    start=$SECONDS
    # (the outer 2>/dev/null: bash's own "Aborted" notice for a crash)
    { (cd "$bdir" && timeout -k 10 "$timeout" "$@" --tap) > "$log" 2>&1; } \
        2>/dev/null || rc=$?
    p=$(grep -E '^ok ' "$log" | grep -cviE '# *(skip|todo)' || true)
    s=$(grep -E '^(not )?ok ' "$log" | grep -ciE '# *(skip|todo)' || true)
    f=$(grep -E '^not ok ' "$log" | grep -cviE '# *(skip|todo)' || true)
    if [ $rc = 124 ] || [ $rc = 137 ]; then
        f=$((f + 1)); note="timed out after ${timeout}s"
    elif [ $rc -gt 128 ]; then
        f=$((f + 1)); note="crashed (signal $((rc - 128)))"
    elif [ $rc != 0 ] && [ "$f" = 0 ]; then
        f=1; note="exited with status $rc"
    elif [ $((p + f + s)) = 0 ]; then
        f=1; note="ran no tests"
    fi
    # A plan printed before the first result (qos-test prints it late) tells
    # how many tests a crash kept from running.
    plan=$(awk '/^(not )?ok /{exit} /^1\.\.[0-9]+/{sub(/^1\.\./, ""); print $1; exit}' "$log")
    if [ -n "$plan" ] && [ $((p + f + s)) -lt "$plan" ]; then
        note="${note:+$note; }$((plan - p - f - s)) of $plan not run"
    fi
    if grep -q '^Bail out!' "$log"; then
        note="${note:+$note: }$(grep -m1 '^Bail out!' "$log" | cut -c1-100)"
    fi
    [ "$f" != 0 ] && note="${note:+$note; }log: build/check/$name.log"
    report "$name" "$p" "$f" "$s" $((SECONDS - start)) "$note"
    grep -E '^not ok ' "$log" | grep -viE '# *(skip|todo)' | sed 's/^/    /' || true
}

glib() {
    local name=$1 bin=$2
    shift 2
    wanted "$name" || return 0
    if ! grep -q "^build $bin:" "$bdir/build.ninja"; then
        report "$name" 0 0 1 0 "not in build.ninja yet"
        return 0
    fi
    if [ ! -x "$bdir/$bin" ]; then
        report "$name" 0 1 0 0 "build/qemu/build/$bin is missing; run 'make'"
        return 0
    fi
    run_tap "$name" "$logs/$name.log" "./$bin" "$@"
}

qos() {
    local name=$1 re=$2 bin=tests/qtest/qos-test paths=() t
    wanted "$name" || return 0
    if [ ! -x "$bdir/$bin" ]; then
        report "$name" 0 1 0 0 "build/qemu/build/$bin is missing; run 'make'"
        return 0
    fi
    # glib's -p does not select a whole qos subtree: pass every path.
    while read -r t; do
        paths+=(-p "$t")
    done < <(cd "$bdir" && "./$bin" -l 2>/dev/null | grep -E "$re" || true)
    if [ ${#paths[@]} = 0 ]; then
        report "$name" 0 1 0 0 "no qos-test path matches $re"
        return 0
    fi
    run_tap "$name" "$logs/$name.log" "./$bin" "${paths[@]}"
}

cmd() {
    local name=$1 rc=0 start=$SECONDS log=$logs/$1.log
    shift
    wanted "$name" || return 0
    { (cd "$repo" && timeout -k 10 "$timeout" "$@") > "$log" 2>&1; } \
        2>/dev/null || rc=$?
    if [ $rc = 0 ]; then
        report "$name" 1 0 0 $((SECONDS - start))
    else
        report "$name" 0 1 0 $((SECONDS - start)) \
            "exit $rc; log: build/check/$name.log"
        tail -n 24 "$log" | sed 's/^/    /'
    fi
}

suites
echo "$total_pass passed, $total_fail failed, $total_skip skipped"
[ "$total_fail" = 0 ] || exit 1
