#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# make install: build a full-featured qemu-system-x86_64 (QEMU's default
# features) from the assembled tree in build/qemu/build-full, then install
# it, qemu-img and the other tools, with links to Debian's firmware
# (seabios, ipxe, OVMF), into $DESTDIR$PREFIX.  A manifest of every installed
# path (share/virtio-net-rsc/manifest) lets 'make uninstall' remove exactly
# those.  The distribution's own QEMU (/usr) is never touched.
#
# Usage: install.sh preflight  stop early when $DESTDIR$PREFIX is not writable
#        install.sh build      configure (when needed) and build build-full
#        install.sh install    install what 'install.sh build' built
#        install.sh features   report the features configure turned off
# Environment: PREFIX (default /usr/local), DESTDIR (default empty).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
me=install
# shellcheck source=scripts/lib.sh
. "$repo/scripts/lib.sh"

mode=${1:?usage: install.sh preflight|build|install|features}
prefix=${PREFIX:-/usr/local}
destdir=${DESTDIR:-}
bdir=$TREE/build-full
table=$repo/scripts/install-packages.txt

case $prefix in
    /*) prefix=$(realpath -m "$prefix") ;;
    *) die "PREFIX=$prefix is not an absolute path; give e.g. PREFIX=/usr/local" ;;
esac
case $prefix in
    /|/usr|/usr/bin|/usr/share/*|/usr/lib*)
        die "PREFIX=$prefix is where Debian's own QEMU lives; use PREFIX=/usr/local" \
            "or PREFIX=/opt/qemu-rsc" ;;
esac
dest=$destdir$prefix

# writable_or_die: one line naming what to run when $dest cannot be written.
writable_or_die() {
    local d=$dest
    while [ ! -e "$d" ]; do
        d=$(dirname "$d")
    done
    if [ ! -w "$d" ]; then
        if [ "$(id -u)" != 0 ]; then
            local args=""
            [ "$prefix" = /usr/local ] || args+=" PREFIX=$prefix"
            [ -z "$destdir" ] || args+=" DESTDIR=$destdir"
            die "cannot write $dest ($d is not writable); run" \
                "'sudo make install$args' (or choose" \
                "'make install PREFIX=\$HOME/.local')"
        fi
        die "$d is not writable even for root (read-only file system?);" \
            "choose another PREFIX=/DESTDIR="
    fi
}

# features LOG: one line per feature of the table that configure turned off.
features() {
    local log=$1 pkg label what state off=0
    while IFS='|' read -r pkg label what; do
        pkg=${pkg//[[:space:]]/}
        label=$(printf '%s' "$label" | sed 's/^ *//; s/ *$//')
        what=$(printf '%s' "$what" | sed 's/^ *//; s/ *$//')
        [ -n "$pkg" ] && [ "$label" != - ] || continue
        state=$(sed -n "s/^ *$label *: *\([A-Za-z]*\).*/\1/p" "$log" | head -n 1)
        [ "$state" != YES ] || continue
        if dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q ' installed$'; then
            echo "install: feature off: '$label' ($what) although $pkg is" \
                 "installed; see build/qemu/build-full/meson-logs/meson-log.txt" >&2
        else
            echo "install: feature off: '$label' ($what): Debian package $pkg" \
                 "gives it; run 'sudo make deps-install', then 'make install'" >&2
        fi
        off=$((off + 1))
    done < <(grep -v '^#' "$table")
    echo "install: $off of the feature lines in scripts/install-packages.txt are off"
}

# QEMU's default features, the one target; PREFIX is compiled in (paths
# outside the data directory, like bridge.conf, are not relocated), so a
# new PREFIX means a new configure (ccache keeps the rebuild cheap).
cfg=(--prefix="$prefix" --target-list=x86_64-softmmu
     --disable-download --disable-install-blobs --disable-docs
     --disable-werror --disable-guest-agent --disable-rust
     --enable-trace-backends=log --python=/usr/bin/python3)
if command -v ccache >/dev/null; then
    cfg+=(--cc="ccache gcc" --cxx="ccache g++")
fi
want="${cfg[*]}"

do_build() {
    [ -d "$TREE/.git" ] || die "build/qemu is missing; run 'make install' (it assembles it)"
    cd "$TREE"
    export CCACHE_BASEDIR=$PWD CCACHE_NOHASHDIR=true
    if [ ! -f "$bdir/build.ninja" ] || [ ! -f "$bdir/.rsc-configure" ] ||
       [ "$(cat "$bdir/.rsc-configure")" != "$want" ]; then
        rm -rf "$bdir"
        mkdir -p "$bdir"
        echo "install: configuring build/qemu/build-full for PREFIX=$prefix"
        if ! (cd "$bdir" && nice -n 10 ../configure "${cfg[@]}" > configure.log 2>&1); then
            tail -n 20 "$bdir/configure.log" >&2
            rm -f "$bdir/build.ninja"
            die "configure failed (log: build/qemu/build-full/configure.log);" \
                "run 'sudo make deps-install' for missing packages"
        fi
        printf '%s' "$want" > "$bdir/.rsc-configure"
    fi
    features "$bdir/configure.log"
    # Only what 'meson install' installs (not QEMU's tests and benchmarks).
    mapfile -t targets < <("$bdir/pyvenv/bin/meson" introspect --installed "$bdir" |
        python3 -c 'import json, sys, os
b = os.path.realpath(sys.argv[1]) + "/"
for k in sorted(json.load(sys.stdin)):
    if k.startswith(b):
        print(k[len(b):])' "$bdir")
    [ ${#targets[@]} -gt 0 ] && printf '%s\n' "${targets[@]}" | grep -qx qemu-system-x86_64 ||
        die "meson introspect lists no qemu-system-x86_64 to install; see build/qemu/build-full/configure.log"
    echo "install: building build/qemu/build-full (the first time takes long;" \
         "log: build/qemu/build-full/ninja.log)"
    flock "$bdir/.ninja.lock" nice -n 10 ninja -C "$bdir" "${targets[@]}" \
        > "$bdir/ninja.log" 2>&1 || {
        grep -E 'error|FAILED' "$bdir/ninja.log" | head -n 30 >&2
        die "ninja failed (log: build/qemu/build-full/ninja.log)"
    }
    echo "install: build-full is built"
}

# firmware DIR: links to Debian's firmware in DIR, one line per missing one.
firmware() {
    local dir=$1 f pkg
    for f in /usr/share/seabios/*.bin /usr/lib/ipxe/qemu/*.rom \
             /usr/share/OVMF/OVMF_CODE_4M*.fd /usr/share/OVMF/OVMF_VARS_4M*.fd; do
        [ -e "$f" ] && ln -sfn "$f" "$dir/$(basename "$f")"
    done
    for f in bios-256k.bin:seabios vgabios-stdvga.bin:seabios \
             efi-virtio.rom:ipxe-qemu OVMF_CODE_4M.fd:ovmf; do
        pkg=${f#*:}; f=${f%%:*}
        [ -e "$dir/$f" ] ||
            echo "install: firmware $f is missing: Debian package $pkg gives it;" \
                 "run 'sudo make deps-install', then 'make install'" >&2
    done
}

do_install() {
    local stage man list old
    writable_or_die
    [ -f "$bdir/.rsc-configure" ] && [ "$(cat "$bdir/.rsc-configure")" = "$want" ] &&
        [ -x "$bdir/qemu-system-x86_64" ] ||
        die "build/qemu/build-full is not built for PREFIX=$prefix; run" \
            "'make install PREFIX=$prefix' (it builds first)"
    stage=$bdir/stage
    rm -rf "$stage"
    "$bdir/pyvenv/bin/meson" install -C "$bdir" --no-rebuild --quiet --destdir "$stage" \
        > "$bdir/install.log" 2>&1 || {
        tail -n 20 "$bdir/install.log" >&2
        die "meson install into the stage failed (log: build/qemu/build-full/install.log)"
    }
    [ -x "$stage$prefix/bin/qemu-system-x86_64" ] ||
        die "meson install did not produce bin/qemu-system-x86_64; see build/qemu/build-full/install.log"
    mkdir -p "$stage$prefix/share/qemu" "$stage$prefix/share/virtio-net-rsc"
    firmware "$stage$prefix/share/qemu"
    sed "s,/usr/local/bin/qemu-system-x86_64,$prefix/bin/qemu-system-x86_64," \
        "$repo/scripts/windows-rsc.xml" > "$stage$prefix/share/virtio-net-rsc/windows-rsc.xml"
    man=$stage$prefix/share/virtio-net-rsc/manifest
    list=$(cd "$stage$prefix" && find . ! -type d | sed 's,^\./,,' | LC_ALL=C sort)
    printf '%s\n' "$list" share/virtio-net-rsc/manifest > "$man"
    # An older install's files that this one no longer has.
    old=$dest/share/virtio-net-rsc/manifest
    if [ -f "$old" ]; then
        LC_ALL=C comm -23 <(LC_ALL=C sort "$old") <(LC_ALL=C sort "$man") |
            while read -r f; do rm -f "$dest/$f"; done
    fi
    mkdir -p "$dest"
    # (owner: whoever installs; symlinks stay symlinks; a running binary is
    # replaced, not overwritten)
    cp -dR --preserve=mode,timestamps --remove-destination "$stage$prefix/." "$dest/"
    rm -rf "$stage"
    echo "install: installed $(wc -l < "$dest/share/virtio-net-rsc/manifest") files into $dest" \
         "($dest/bin/qemu-system-x86_64); 'make install-check PREFIX=$prefix' tests it"
}

case $mode in
    preflight) writable_or_die ;;
    build) do_build ;;
    install) do_install ;;
    features)
        [ -f "$bdir/configure.log" ] || die "build-full is not configured; run 'make install'"
        features "$bdir/configure.log" ;;
    *) die "unknown mode '$mode'; usage: install.sh preflight|build|install|features" ;;
esac
