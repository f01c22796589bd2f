#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Each generated man page renders with NAME, SYNOPSIS and the program's options (from its --help),
# and the bash completion completes each program's own options.
# Usage: man_test.sh COMPLETION PAGE:PROGRAM...
set -uo pipefail
completion=$1
shift
failures=0
for pair in "$@"; do
    page=${pair%%:*} program=${pair#*:}
    name=$(basename "$program")
    text=$(man -l "$page" 2>/dev/null)
    for want in "^NAME" "^SYNOPSIS" "^ *$name " "--version"; do
        grep -q -- "$want" <<<"$text" || {
            echo "FAIL: $page: no '$want' in the rendered page"
            failures=$((failures + 1))
        }
    done
    got=$(PATH="$(dirname "$program"):$PATH" bash -c "source '$completion'
        COMP_WORDS=($name --vers); COMP_CWORD=1; _ringd_tool; echo \"\${COMPREPLY[*]}\"")
    [ "$got" = --version ] || {
        echo "FAIL: completion of '$name --vers': '$got'"
        failures=$((failures + 1))
    }
done
[ "$failures" -eq 0 ] && echo "ok: $# man pages render, and the completion answers for each program"
[ "$failures" -eq 0 ]
