#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# A receiving child's exit code tells its master whether to try again: run through
# ringd::daemon_run, a port in use is temporary (75: restarted with backoff) and a configuration
# without the child's table is a configuration error (78: not restarted until a reload).
# Usage: child_exit_test.sh XFERRD
set -uo pipefail
xferrd=${1:?}
# shellcheck source-path=SCRIPTDIR source=../process/check_lib.sh
. "$(dirname "$0")/../process/check_lib.sh"
# Someone else listens on the port (an ephemeral one on loopback; gone at the end).
python3 -c 'import socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen()
print(s.getsockname()[1], flush=True)
time.sleep(60)' >"$tmp/port" &
pid=$!
for _ in $(seq 100); do [ -s "$tmp/port" ] && break; sleep 0.1; done
printf 'spool = "%s/spool"\nrun_dir = "%s/run"\n[tcpip]\nlisten = ["127.0.0.1:%s"]\n' \
    "$tmp" "$tmp" "$(cat "$tmp/port")" >"$tmp/xfer.toml"

timeout -s KILL 30 "$xferrd" -c "$tmp/xfer.toml" --child tcpip 2>"$tmp/err"
status=$?
[ $status -eq 75 ]
check "a port in use: exit 75 (temporary)" $? "exit $status"
grep -q "xferrd_tcpip: bind 127.0.0.1:.*Address already in use" "$tmp/err"
check "... naming the address and the reason" $? "$(cat "$tmp/err")"

timeout -s KILL 30 "$xferrd" -c "$tmp/xfer.toml" --child unix 2>"$tmp/err"
status=$?
[ $status -eq 78 ]
check "no [unix] table: exit 78 (configuration)" $? "exit $status"
grep -q "no \[unix\] table" "$tmp/err"
check "... saying so" $? "$(cat "$tmp/err")"
finish
