#!/bin/sh
# SPDX-License-Identifier: MIT
# Runs the program named by $RINGD_MAN_PROGRAM for help2man: its --help and --version are the
# one source of the man page. help2man reads a SYNOPSIS from "Usage: NAME ..." lines, further
# forms as "  or: NAME ...", each on one line; ringd's help texts (and their tests) write
# "usage:", and continue a long form on indented lines: this joins and relabels them.
"$RINGD_MAN_PROGRAM" "$@" | awk -v name="${RINGD_MAN_PROGRAM##*/}" '
    NR == 1 { sub(/^usage:/, "Usage:"); line = $0; usage = 1; next }
    usage && /^[ \t]*$/ { print line; print; usage = 0; next }
    usage && $1 == name { print line; sub(/^[ \t]+/, ""); line = "  or: " $0; next }
    usage { sub(/^[ \t]+/, " "); line = line $0; next }
    { print }
    END { if (usage) print line }'
