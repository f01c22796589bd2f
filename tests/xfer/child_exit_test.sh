#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# A receiving child's exit code tells its master whether to try again: run through
# ringd::daemon_run, a port in use is temporary (75: restarted with backoff) and a configuration
# without the child's table is a configuration error (78: not restarted until a reload).
# Usage: child_exit_test.sh XFERRD
set -uo pipefail
xferrd=${1:?}
tmp=$(mktemp -d)
holder=0
cleanup() {
    [ "$holder" -gt 0 ] && kill "$holder" 2>/dev/null && wait "$holder" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
failures=0
check() { # check WHAT GOT WANT
    if [ "$2" = "$3" ]; then echo "ok: $1"; else
        echo "FAIL: $1: got '$2', expected '$3'"
        failures=$((failures + 1))
    fi
}
# Someone else listens on the port (an ephemeral one on loopback; gone at the end).
python3 -c 'import socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen()
print(s.getsockname()[1], flush=True)
time.sleep(60)' >"$tmp/port" &
holder=$!
for _ in $(seq 100); do [ -s "$tmp/port" ] && break; sleep 0.1; done
printf 'spool = "%s/spool"\nrun_dir = "%s/run"\n[tcpip]\nlisten = ["127.0.0.1:%s"]\n' \
    "$tmp" "$tmp" "$(cat "$tmp/port")" >"$tmp/xfer.toml"

timeout -s KILL 30 "$xferrd" -c "$tmp/xfer.toml" --child tcpip 2>"$tmp/err"
check "a port in use: exit 75 (temporary)" $? 75
grep -q "xferrd_tcpip: bind 127.0.0.1:.*Address already in use" "$tmp/err"
check "... naming the address and the reason" $? 0

timeout -s KILL 30 "$xferrd" -c "$tmp/xfer.toml" --child unix 2>"$tmp/err"
check "no [unix] table: exit 78 (configuration)" $? 78
grep -q "no \[unix\] table" "$tmp/err"
check "... saying so" $? 0

[ $failures -eq 0 ] && echo "all passed"
exit $((failures > 0))
