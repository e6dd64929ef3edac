# shellcheck shell=bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Shared helpers for the scripts; source it, do not run it.
# The sourcing script sets $repo (the repository root) first.

# Directories of the repository that hold files at their QEMU paths.
QEMU_TOP_DIRS="hw include tests docs net"
QEMU_TOP_FILES="MAINTAINERS meson.build"

# Where things live.  The cache survives 'make clean'; build/ does not.
RSC_CACHE=${RSC_CACHE:-$HOME/.cache/virtio-net-rsc}
CACHE_SRC=$RSC_CACHE/src
TREE=${TREE:-$repo/build/qemu}

# Files in the tree that are never part of the series (besides the tree's own
# .gitignore and the /build/ exclude written by assemble.sh).
TREE_EXCLUDES=("/build-*/" "*.orig" "*.rej" "*~" ".*.swp" "core" "core.[0-9]*" "perf.data*")

# Print "name: message" on stderr and exit 1.  $me is set by the caller.
die() { echo "${me:-${0##*/}}: $*" >&2; exit 1; }

# An unexpected failure (a bug, or something odd on this machine) still ends
# with one line saying what happened.
trap 'rc=$?; echo "${me:-${0##*/}}: unexpected failure (exit $rc) at line $LINENO: $BASH_COMMAND; fix the cause above and rerun" >&2' ERR

# List the repository's series files: edits/**.diff and new files, repo-relative.
repo_files() {
    (
        cd "$repo" || exit 1
        # shellcheck disable=SC2086
        { git ls-files -co --exclude-standard -- edits $QEMU_TOP_DIRS $QEMU_TOP_FILES 2>/dev/null ||
          find edits $QEMU_TOP_DIRS -type f 2>/dev/null; } |
            while read -r f; do [ -f "$f" ] && echo "$f"; done | LC_ALL=C sort -u
    )
}

# Map repo_files output to QEMU paths (strip edits/ and .diff).
qemu_path() {
    sed -e 's,^edits/\(.*\)\.diff$,\1,'
}

# Is QEMU path $1 one the repository may hold as a new file?
is_qemu_path() {
    local d
    for d in $QEMU_TOP_DIRS; do
        case $1 in "$d"/*) return 0 ;; esac
    done
    for d in $QEMU_TOP_FILES; do
        [ "$1" = "$d" ] && return 0
    done
    return 1
}

# write_snapshot DIR: DIR = copy of the repository's series files plus a
# .list of them.  assemble.sh and refresh.sh keep one in $TREE.assembled:
# it is what the tree was last synchronised with.
write_snapshot() {
    local dir=$1 f
    mkdir -p "$dir"
    repo_files > "$dir/.list"
    while read -r f; do
        mkdir -p "$dir/$(dirname "$f")"
        cp "$repo/$f" "$dir/$f"
    done < "$dir/.list"
}

# replace_snapshot: write a fresh snapshot of the repository next to the
# tree, atomically (a half-written snapshot is never left behind).
replace_snapshot() {
    local tmp
    tmp=$(mktemp -d "$TREE.assembled.XXXXXX")
    write_snapshot "$tmp"
    rm -rf "$TREE.assembled"
    mv "$tmp" "$TREE.assembled"
}

# desired SRC PATH OUT: the content QEMU path PATH should have according to
# the repository (or snapshot) directory SRC.  Writes it to OUT and returns
# 0, returns 1 when the path is pristine base, 2 when its edit does not apply.
desired() {
    local src=$1 path=$2 out=$3
    if [ -f "$src/edits/$path.diff" ]; then
        if [ -n "$(git -C "$TREE" ls-tree base -- "$path")" ]; then
            git -C "$TREE" show "base:$path" > "$out"
        else
            : > "$out"
        fi
        if ! patch -s -f -p1 --no-backup-if-mismatch -r "$out.rej" "$out" \
                < "$src/edits/$path.diff" > "$out.log" 2>&1; then
            echo "${me:-assemble}: edits/$path.diff does not apply to $path;" \
                 "$(grep -o '[0-9]* out of [0-9]* hunks* FAILED' "$out.log" ||
                    echo 'patch said:')" >&2
            if [ -s "$out.rej" ]; then
                grep -v '^\(---\|+++\) ' "$out.rej" | head -n 40 | sed 's/^/    /' >&2
            else
                sed 's/^/    /' "$out.log" >&2
            fi
            rm -f "$out.rej" "$out.log"
            return 2
        fi
        rm -f "$out.rej" "$out.log"
        return 0
    fi
    if [ -f "$src/$path" ]; then
        cp "$src/$path" "$out"
        return 0
    fi
    return 1
}

# tree_matches SRC PATH: does the tree hold what SRC says PATH should be?
tree_matches() {
    local src=$1 path=$2 tmp rc=0
    tmp=$(mktemp)
    desired "$src" "$path" "$tmp" || rc=$?
    if [ $rc = 0 ]; then
        cmp -s "$tmp" "$TREE/$path" || rc=3
    elif [ $rc = 1 ]; then
        rc=0
        if [ -n "$(git -C "$TREE" ls-tree base -- "$path")" ]; then
            git -C "$TREE" diff --quiet base -- "$path" || rc=3
        else
            [ ! -e "$TREE/$path" ] || rc=3
        fi
    fi
    rm -f "$tmp"
    return $rc
}

# tree_changes: what the tree changes relative to tag 'base', one
# "STATUS<TAB>PATH" line per path, sorted by path: M (a base file changed),
# D (a base file deleted), A (a new file: untracked and not ignored, outside
# build/).
tree_changes() {
    local excl=() e
    for e in "${TREE_EXCLUDES[@]}"; do
        excl+=(--exclude="$e")
    done
    {
        git -C "$TREE" -c core.quotePath=off diff --no-renames --name-status base -- |
            sed 's/^T\t/M\t/'
        git -C "$TREE" -c core.quotePath=off ls-files -o --exclude-standard \
            "${excl[@]}" | sed 's/^/A\t/'
    } | sort -t "$(printf '\t')" -k2 -u
}

# diff_base PATH...: the deterministic diff of PATHs in the tree against base
# (user diff settings do not leak in).
diff_base() {
    git -C "$TREE" -c core.quotePath=off -c diff.noprefix=false \
        -c diff.mnemonicPrefix=false -c diff.relative=false \
        -c diff.algorithm=myers -c diff.indentHeuristic=true \
        -c diff.suppressBlankEmpty=false -c diff.context=3 -c core.abbrev=12 \
        diff --no-color --no-ext-diff --no-textconv --no-renames base -- "$@"
}

# ensure_tree: assemble build/qemu (fetching the base first) when it is
# missing, so that lint and series work on a fresh clone.
ensure_tree() {
    if [ ! -d "$TREE/.git" ]; then
        echo "${me:-${0##*/}}: build/qemu is missing; assembling it first"
        "$repo/scripts/fetch-base.sh" "$CACHE_SRC"
        "$repo/scripts/assemble.sh" "$CACHE_SRC" "$TREE"
    fi
}

# build_qtest_prog BIN SRC... [-- DEP...]: compile the C files SRC with the
# flags of QEMU's qtests (from build/qemu/build/compile_commands.json) and
# link them with the libqos, QOM and util objects of build/qemu/build into
# BIN, unless BIN is newer than every SRC, DEP and libqemuutil.a.  Holds the
# build directory's lock meanwhile: its objects must not change under us.
build_qtest_prog() {
    local bin=$1 bdir=$TREE/build f stale=0 i=0 srcs=() deps=() objs=()
    local flags glib
    shift
    while [ $# -gt 0 ] && [ "$1" != -- ]; do srcs+=("$1"); shift; done
    [ $# -gt 0 ] && shift
    deps=("$@")
    for f in "${srcs[@]}" "${deps[@]}" "$bdir/libqemuutil.a" "$repo/scripts/lib.sh"; do
        [ "$bin" -nt "$f" ] || stale=1
    done
    [ $stale = 1 ] || return 0
    echo "${me:-build}: building $bin" >&2
    # shellcheck disable=SC2207
    flags=($(/usr/bin/python3 "$repo/scripts/compile-flags.py" \
        "$bdir/compile_commands.json" tests/qtest/virtio-net-test.c)) ||
        die "cannot read the qtest compile flags from compile_commands.json; run 'make'"
    # shellcheck disable=SC2207
    glib=($(pkg-config --libs glib-2.0))
    mkdir -p "$(dirname "$bin")"
    for f in "${srcs[@]}"; do
        objs+=("$bin.$((i++)).o")
    done
    (
        cd "$bdir" && flock 9 &&
        for i in "${!srcs[@]}"; do
            gcc "${flags[@]}" -I"$TREE/tests/qtest" -c "${srcs[$i]}" -o "${objs[$i]}" || exit 1
        done &&
        gcc -pie -o "$bin.tmp" "${objs[@]}" \
            libevent-loop-base.a.p/event-loop-base.c.o libqom.a.p/*.o \
            tests/qtest/libqos/libqos.a.p/*.o tests/qtest/libqos/libqos.a.p/.*.o \
            -Wl,--start-group libqemuutil.a -lm -pthread "${glib[@]}" -Wl,--end-group
    ) 9>> "$bdir/.ninja.lock" || die "building $bin failed (compiler messages above)"
    mv "$bin.tmp" "$bin"
}

# The benchmark's configurations for $1 connections, one per line,
# "id|QEMU binary|harness arguments": upstream ($3) with RSC on and off,
# ours ($2) off, on at 300 us and at interval 0, and with the GRO rules.
# Above 64 connections ours get a flow table that holds them all.
bench_configs() {
    local flows=$1 ours=$2 base=$3 mf=
    if [ "$flows" -gt 64 ]; then
        mf=,rsc_max_flows=$flows
    fi
    echo "base|$base|--device guest_rsc_ext=on,rsc_interval=300000"
    echo "base-off|$base|--device guest_rsc_ext=off --no-rsc-ext"
    echo "off|$ours|--device guest_rsc_ext=off --no-rsc-ext"
    echo "on|$ours|--device guest_rsc_ext=on,rsc_interval=300000$mf"
    echo "on0|$ours|--device guest_rsc_ext=on,rsc_interval=0$mf"
    echo "gro|$ours|--device guest_rsc_ext=off,rsc_gro=on,rsc_interval=300000$mf --no-rsc-ext"
}
