# SPDX-License-Identifier: GPL-2.0-or-later
# Shared helpers for the scripts; source it, do not run it.

# Directories of the repository that hold files at their QEMU paths.
QEMU_TOP_DIRS="hw include tests docs net"
QEMU_TOP_FILES="MAINTAINERS meson.build"

# List the repository's series files: edits/**.diff and new files, repo-relative.
repo_files() {
    (
        cd "$repo"
        { git ls-files -co --exclude-standard -- edits $QEMU_TOP_DIRS 2>/dev/null ||
          find edits $QEMU_TOP_DIRS -type f 2>/dev/null; } |
            while read -r f; do [ -f "$f" ] && echo "$f"; done | sort -u
    )
}

# Map repo_files output to QEMU paths (strip edits/ and .diff).
qemu_path() {
    sed -e 's,^edits/\(.*\)\.diff$,\1,'
}
