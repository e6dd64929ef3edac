#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Export the series: one commit per series/NN-*.txt plan file, built on
# 'base' in a scratch repository, with the final content of each listed path
# taken from build/qemu's working tree; then git format-patch with a cover
# letter filled from series/cover.txt, into out/series/.
#
# A plan file is:
#   subsystem: summary                 (the commit subject)
#   <blank line>
#   body, wrapped at 76 columns
#   Files:
#   one/qemu/path.c                    (one per line)
#   MAINTAINERS < series/parts/x.diff  (an intermediate state: base + diff)
#
# A path gets its final content (build/qemu's) in the one plan file that
# lists it plainly; earlier commits may give it intermediate states, each a
# diff against base kept in series/parts/ (for example MAINTAINERS growing
# with each commit that adds files, so that checkpatch stays quiet).
#
# Every path build/qemu changes must be in exactly one plan file.  The
# author is SERIES_AUTHOR="Name <email>" or git config user.name/user.email
# (neither: stop); it also replaces the placeholder maintainer of the
# series' MAINTAINERS entry.  Dates are fixed, so regenerating an unchanged
# series is byte-identical.
#
# Usage: series.sh      (SERIES_DATE=... overrides the fixed date)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
me=series
# shellcheck source=scripts/lib.sh
. "$repo/scripts/lib.sh"

date=${SERIES_DATE:-2026-01-01T00:00:00Z}
plan_dir=$repo/series
out=$repo/out/series
width=76

# The author: From:, Signed-off-by: and the maintainer of the MAINTAINERS
# entry, which the repository keeps as a placeholder ($placeholder).
placeholder="virtio-net RSC developers <devel@example.invalid>"
if [ -n "${SERIES_AUTHOR:-}" ]; then
    author=$SERIES_AUTHOR
    from="SERIES_AUTHOR"
else
    name=$(git -C "$repo" config user.name || true)
    email=$(git -C "$repo" config user.email || true)
    [ -n "$name" ] && [ -n "$email" ] ||
        die "no author: set 'git config user.name \"Your Name\"' and" \
            "'git config user.email you@example.org', or run" \
            "'make series SERIES_AUTHOR=\"Your Name <you@example.org>\"'"
    author="$name <$email>"
    from="git config user.name/user.email"
fi
[[ $author =~ ^([^\<\>]*[^\<\>[:space:]])[[:space:]]+\<([^\<\>@[:space:]]+@[^\<\>@[:space:]]+)\>$ ]] ||
    die "author '$author' (from $from) is not 'Name <user@host>'; fix it"
name=${BASH_REMATCH[1]}
email=${BASH_REMATCH[2]}
case $email in
    *@example.invalid|*.invalid)
        die "the author's address $email is not a real one; give your own" ;;
esac
export GIT_AUTHOR_NAME=$name GIT_AUTHOR_EMAIL=$email GIT_AUTHOR_DATE=$date
export GIT_COMMITTER_NAME=$name GIT_COMMITTER_EMAIL=$email
export GIT_COMMITTER_DATE=$date

[ -f "$plan_dir/cover.txt" ] ||
    die "series/cover.txt is missing; write the cover letter's subject and blurb there"
plans=()
while read -r f; do
    plans+=("$f")
done < <(cd "$plan_dir" && ls | grep -E '^[0-9]+-.*\.txt$' | LC_ALL=C sort)
[ ${#plans[@]} -gt 0 ] ||
    die "no series/NN-name.txt plan files; add one per commit (see README.md)"

ensure_tree

# --- The plan: parse and check every file. ---------------------------------
declare -A owner=()         # QEMU path -> plan file
tmp=$(mktemp -d)
mkdir -p "$repo/out"
work=$(mktemp -d "$repo/out/.series.XXXXXX")
trap 'rm -rf "$tmp" "$work"' EXIT

for plan in "${plans[@]}"; do
    n=0; in_files=0; subject=""; body=(); files=(); parts=()
    while IFS= read -r line || [ -n "$line" ]; do
        n=$((n + 1))
        if [ $in_files = 1 ]; then
            line=${line%%#*}
            line=${line//[[:space:]]/}
            case $line in
                "") ;;
                *"<"*)
                    [ -f "$repo/${line#*<}" ] ||
                        die "series/$plan:$n: ${line#*<} does not exist"
                    parts+=("${line%%<*} ${line#*<}") ;;
                *) files+=("$line") ;;
            esac
            continue
        fi
        if [ $n = 1 ]; then
            subject=$line
        elif [ "$line" = "Files:" ]; then
            in_files=1
        elif [ $n = 2 ] && [ -n "$line" ]; then
            die "series/$plan:2: the subject must be followed by a blank line"
        elif [ $n -gt 2 ]; then
            body+=("$line")
        fi
        if [ ${#line} -gt $width ]; then
            die "series/$plan:$n: line is ${#line} columns; wrap at $width"
        fi
    done < "$plan_dir/$plan"
    case $subject in
        *?:\ ?*) ;;
        *) die "series/$plan:1: subject '$subject' is not 'subsystem: summary'" ;;
    esac
    [ $in_files = 1 ] && [ ${#files[@]} -gt 0 ] ||
        die "series/$plan: no 'Files:' line followed by paths; list the commit's files"
    # Drop the body's trailing blank lines.
    while [ ${#body[@]} -gt 0 ] && [ -z "${body[-1]}" ]; do
        unset 'body[-1]'
    done
    {
        printf '%s\n' "$subject"
        if [ ${#body[@]} -gt 0 ]; then
            printf '\n'
            printf '%s\n' "${body[@]}"
        fi
        printf '\nSigned-off-by: %s <%s>\n' "$name" "$email"
    } > "$tmp/$plan.msg"
    for p in "${files[@]}"; do
        if [ -n "${owner[$p]:-}" ]; then
            die "$p is listed in both series/${owner[$p]} and series/$plan;" \
                "keep it in one"
        fi
        owner[$p]=$plan
    done
    printf '%s\n' "${files[@]}" > "$tmp/$plan.files"
    printf '%s\n' "${parts[@]+"${parts[@]}"}" > "$tmp/$plan.parts"
done

unplanned=()
outside=()
declare -A changed=()
while IFS=$'\t' read -r st p; do
    if [ "$st" = A ] && ! is_qemu_path "$p"; then
        outside+=("$p")
        continue
    fi
    changed[$p]=1
    [ -n "${owner[$p]:-}" ] || unplanned+=("$p")
done < <(tree_changes)
[ ${#outside[@]} = 0 ] ||
    die "new file(s) outside the QEMU paths: ${outside[*]}; see 'make refresh'"
[ ${#unplanned[@]} = 0 ] ||
    die "changed but in no series/ file: ${unplanned[*]};" \
        "add each under 'Files:' in the commit that introduces it"
idle=()
for p in "${!owner[@]}"; do
    [ -n "${changed[$p]:-}" ] || idle+=("$p")
done
if [ ${#idle[@]} -gt 0 ]; then
    echo "series: note: listed in series/ but unchanged in build/qemu:" \
         "$(printf '%s\n' "${idle[@]}" | LC_ALL=C sort | tr '\n' ' ')"
fi

# set_maintainer: stdin to stdout, the placeholder maintainer made the author.
set_maintainer() {
    local line
    while IFS= read -r line || [ -n "$line" ]; do
        if [ "$line" = "M: $placeholder" ]; then
            line="M: $name <$email>"
        fi
        printf '%s\n' "$line"
    done
}

# --- The commits, in a scratch repository sharing build/qemu's objects. ------
git clone -q --bare --shared --no-tags "$TREE" "$work/git" 2>/dev/null ||
    die "cannot clone build/qemu into out/; check that out/ is writable"
g=(git --git-dir="$work/git" -c core.abbrev=12 -c diff.noprefix=false
   -c diff.mnemonicPrefix=false -c diff.algorithm=myers -c diff.renames=false
   -c core.quotePath=off)
base=$(git -C "$TREE" rev-parse 'base^{commit}')
export GIT_INDEX_FILE=$work/index
"${g[@]}" read-tree "$base"
parent=$base
for plan in "${plans[@]}"; do
    while read -r p; do
        [ -n "${changed[$p]:-}" ] || continue
        f=$TREE/$p
        if [ -L "$f" ]; then
            die "build/qemu/$p is a symlink; the series holds regular files only"
        elif [ -f "$f" ]; then
            mode=100644
            [ -x "$f" ] && mode=100755
            if [ "$p" = MAINTAINERS ]; then
                set_maintainer < "$f" > "$tmp/maintainers"
                f=$tmp/maintainers
            fi
            sha=$("${g[@]}" hash-object -w --no-filters -- "$f")
            "${g[@]}" update-index --add --cacheinfo "$mode,$sha,$p"
        else
            "${g[@]}" update-index --force-remove -- "$p"
        fi
    done < "$tmp/$plan.files"
    while read -r p part; do
        [ -n "$p" ] || continue
        git -C "$TREE" show "base:$p" > "$tmp/part" 2>/dev/null || : > "$tmp/part"
        patch -s -f -p1 --no-backup-if-mismatch -r - "$tmp/part" \
            < "$repo/$part" > "$tmp/part.log" 2>&1 ||
            die "$part does not apply to base:$p: $(head -n 1 "$tmp/part.log")"
        if [ "$p" = MAINTAINERS ]; then
            set_maintainer < "$tmp/part" > "$tmp/part.m"
            mv "$tmp/part.m" "$tmp/part"
        fi
        sha=$("${g[@]}" hash-object -w --no-filters -- "$tmp/part")
        "${g[@]}" update-index --add --cacheinfo "100644,$sha,$p"
    done < "$tmp/$plan.parts"
    t=$("${g[@]}" write-tree)
    if [ "$t" = "$("${g[@]}" rev-parse "$parent^{tree}")" ]; then
        die "series/$plan changes nothing (none of its files differ from the" \
            "commit before); fix its 'Files:' list or remove it"
    fi
    parent=$("${g[@]}" commit-tree "$t" -p "$parent" -F "$tmp/$plan.msg")
done
unset GIT_INDEX_FILE

# --- format-patch and the cover letter. ------------------------------------
mkdir "$work/series"
"${g[@]}" format-patch -q --zero-commit --cover-letter --no-signature \
    --no-thread --subject-prefix=PATCH --suffix=.patch --no-renames \
    --no-attach --no-to --no-cc --no-add-header \
    -o "$work/series" "$base..$parent" > /dev/null
cover=$work/series/0000-cover-letter.patch
{ head -n 1 "$plan_dir/cover.txt"; } > "$tmp/cover-subject"
tail -n +2 "$plan_dir/cover.txt" | sed '/./,$!d' > "$tmp/cover-blurb"
[ -s "$tmp/cover-subject" ] && [ -s "$tmp/cover-blurb" ] ||
    die "series/cover.txt needs a subject line, a blank line and a blurb"
awk -v sf="$tmp/cover-subject" -v bf="$tmp/cover-blurb" '
    BEGIN { getline subj < sf; while ((getline l < bf) > 0) blurb = blurb l "\n" }
    /\*\*\* SUBJECT HERE \*\*\*/ { sub(/\*\*\* SUBJECT HERE \*\*\*/, subj) }
    /^\*\*\* BLURB HERE \*\*\*$/ { printf "%s", blurb; next }
    { print }' "$cover" > "$tmp/cover"
grep -q '\*\*\* \(SUBJECT\|BLURB\) HERE \*\*\*' "$tmp/cover" &&
    die "could not fill the cover letter placeholders (git format-patch changed?)"
mv "$tmp/cover" "$cover"

if grep -lF "${placeholder#*<}" "$work/series"/*.patch > "$tmp/leaks"; then
    die "the placeholder address ${placeholder#*<} is still in" \
        "$(xargs -n1 basename < "$tmp/leaks" | tr '\n' ' ')(a line" \
        "series.sh does not replace); fix it in build/qemu"
fi
rm -rf "$out"
mv "$work/series" "$out"

# Per-commit checkpatch, for information ('make lint' is the gate).
for f in "$out"/0*.patch; do
    case $f in */0000-cover-letter.patch) continue ;; esac
    res=$(cd "$TREE" && perl scripts/checkpatch.pl --no-color --strict \
          --root="$TREE" "$f" 2>&1 | grep -E '^total: ' || true)
    echo "series: $(basename "$f"): checkpatch ${res#total: }"
done
echo "series: wrote out/series/ ($(( $(ls "$out" | wc -l) - 1 )) patches" \
     "and the cover letter) as $name <$email>; send with" \
     "'git send-email out/series/*'"
