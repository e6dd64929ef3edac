#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Print the compiler flags QEMU's build uses for one source file.

Usage: compile-flags.py COMPILE_COMMANDS_JSON SOURCE_SUFFIX [MUST_CONTAIN]

Reads meson's compile_commands.json and prints, shell-quoted on one line,
the arguments of the first command compiling a file ending in
SOURCE_SUFFIX (and containing MUST_CONTAIN, if given), without the
compiler itself, the source, -c, -o, and the dependency-file options.
The flags are relative to the build directory.
"""
import json
import shlex
import sys


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__.strip().splitlines()[2])
    path, suffix = sys.argv[1], sys.argv[2]
    must = sys.argv[3] if len(sys.argv) == 4 else ""
    for e in json.load(open(path)):
        if e["file"].endswith(suffix) and must in e["command"]:
            args = shlex.split(e["command"])
            cc = next(i for i, a in enumerate(args) if a.endswith("gcc"))
            out, skip = [], False
            for a in args[cc + 1:]:
                if skip:
                    skip = False
                elif a in ("-MQ", "-MF", "-o", "-c"):
                    skip = True
                elif a != "-MD" and not a.endswith(".c"):
                    out.append(a)
            print(" ".join(shlex.quote(a) for a in out))
            return
    sys.exit("no compile command for %s in %s; run 'make'" % (suffix, path))


main()
