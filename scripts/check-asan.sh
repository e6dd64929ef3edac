#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Build QEMU with AddressSanitizer and UndefinedBehaviorSanitizer in its own
# build directory (build/qemu/build-asan) and run the RSC tests under it:
# the unit tests and the qtests of both rule profiles and of multiqueue.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
tree=$repo/build/qemu
bdir=build-asan

if [ ! -d "$tree/.git" ]; then
    echo "check-asan: build/qemu is missing; run 'make' first" >&2
    exit 1
fi
"$repo/scripts/build.sh" "$tree" "$bdir" --enable-asan --enable-ubsan
cd "$tree/$bdir"
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export QTEST_QEMU_BINARY=./qemu-system-x86_64
# the qtest skips its memory-growth bound: ASan quarantines freed memory
export RSC_TEST_SANITIZED=1
pass=0
fail=0
skip=0
for t in tests/unit/test-virtio-net-rsc tests/unit/test-virtio-net-rsc-gro \
         tests/qtest/virtio-net-rsc-test tests/qtest/virtio-net-rsc-gro-test \
         tests/qtest/virtio-net-rsc-mq-test; do
    if [ ! -x "$t" ]; then
        echo "check-asan: $t was not built" >&2
        fail=$((fail + 1))
        continue
    fi
    log=$(mktemp)
    if "$t" --tap -k > "$log" 2>&1 && ! grep -q 'runtime error:\|AddressSanitizer' "$log"; then
        n=$(grep '^ok ' "$log" | grep -cviE '# *skip' || true)
        k=$(grep '^ok ' "$log" | grep -ciE '# *skip' || true)
        echo "check-asan: $t: $n ok, $k skipped"
        pass=$((pass + n))
        skip=$((skip + k))
    else
        grep -E '^not ok|runtime error:|ERROR: AddressSanitizer|SUMMARY' "$log" | head -n 20 >&2
        echo "check-asan: $t failed (full log: $log)" >&2
        fail=$((fail + 1))
        pass=$((pass + $(grep -c '^ok ' "$log" || true)))
    fi
done
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" = 0 ]
