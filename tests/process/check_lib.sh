# SPDX-License-Identifier: MIT
# Sourced by the shell tests that start one background process (a supervisor, a port holder): a
# scratch directory `tmp`, that process's pid in `pid` (killed at exit if still running), and check WHAT STATUS DETAIL,
# which prints ok/FAIL and counts failures; finish prints the verdict and exits with it.
tmp=$(mktemp -d)
pid=0
failures=0
cleanup() {
    [ "$pid" -gt 0 ] && kill -KILL "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
check() { # check WHAT STATUS DETAIL
    if [ "$2" = 0 ]; then echo "ok: $1"; else
        echo "FAIL: $1 ($3)"
        failures=$((failures + 1))
    fi
}
finish() {
    [ $failures -eq 0 ] && echo "all passed"
    exit $((failures > 0))
}
