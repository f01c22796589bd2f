#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The OCF resource agents tools/ocf/daemon and tools/ocf/xfer, against the real echod,
# ringd-control and xferctl:
#   1. ocf-tester (Debian: resource-agents), Pacemaker's own compliance check, passes;
#   2. monitor answers 7 (not running) for no PID file and for a stale one, 0 while running,
#      1 when the PID file is locked by a process other than the one it names (ringd-control
#      refuses to vouch for it) — and that process is never signalled by stop;
#   3. validate-all: 6 without pid_file, 5 without ringd-control; a probe without the tools is 7;
#   4. reload acknowledges (0), and is 7 once stopped;
#   5. ocf-tester passes on the xfer family's agent (with XFERCTL set).
# Environment: AGENT, ECHOD, RINGD_CONTROL, XFER_AGENT, XFERCTL (paths). Exit 77 when
# ocf-tester is not installed.
set -uo pipefail
command -v ocf-tester >/dev/null || { echo "ocf-tester not installed (resource-agents)"; exit 77; }
agent=${AGENT:?} echod=${ECHOD:?} control=${RINGD_CONTROL:?}
tmp=$(mktemp -d)
chmod 755 "$tmp" # ocf-tester also runs the agent as nobody
holder=
cleanup() {
    [ -f "$tmp/e.pid" ] && "$control" --pid-file "$tmp/e.pid" --stop --timeout 5 >/dev/null 2>&1
    [ -n "$holder" ] && kill "$holder" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
failures=0
expect() { # expect WANT WHAT -- CMD...: CMD's exit code must be WANT
    local want=$1 what=$2 rc
    shift 3
    "$@" >"$tmp/out" 2>&1
    rc=$?
    if [ "$rc" -eq "$want" ]; then
        echo "ok: $what ($rc)"
    else
        echo "FAIL: $what: exit $rc, expected $want"
        sed 's/^/    /' "$tmp/out"
        failures=$((failures + 1))
    fi
}

export OCF_ROOT=/usr/lib/ocf
export OCF_RESKEY_pid_file=$tmp/e.pid OCF_RESKEY_control=$control
export OCF_RESKEY_command="$echod --listen 127.0.0.1:0 --pid-file $tmp/e.pid"

expect 0 "ocf-tester passes" -- ocf-tester -n echod -o pid_file="$OCF_RESKEY_pid_file" \
    -o control="$control" -o command="$OCF_RESKEY_command" "$agent"

expect 7 "monitor without a PID file: not running" -- "$agent" monitor
expect 0 "start" -- "$agent" start
expect 0 "monitor while running" -- "$agent" monitor
expect 0 "start again: already running is success" -- "$agent" start
expect 0 "reload is acknowledged" -- "$agent" reload
expect 0 "stop" -- "$agent" stop
expect 7 "monitor after stop" -- "$agent" monitor
expect 7 "reload when stopped: not running" -- "$agent" reload
expect 0 "stop again: not running is success" -- "$agent" stop

# A stale PID file (a dead process's PID, no lock): not running, and cleaned.
sh -c 'exit 0' &
dead=$!
wait "$dead"
echo "$dead" >"$tmp/e.pid"
expect 7 "monitor with a stale PID file: not running" -- "$agent" monitor

# Locked by one process, naming another: ringd-control vouches for nobody, nothing is signalled.
sleep 60 &
victim=$!
echo "$victim" >"$tmp/e.pid"
flock -x "$tmp/e.pid" sleep 60 &
holder=$!
for _ in $(seq 50); do flock -n -x "$tmp/e.pid" true 2>/dev/null || break; sleep 0.05; done
expect 1 "monitor on a PID file locked by another process: error" -- "$agent" monitor
OCF_RESKEY_stop_timeout=2 expect 1 "stop refuses to signal a process it cannot vouch for" -- \
    "$agent" stop
if kill -0 "$victim" 2>/dev/null; then echo "ok: the named process was not signalled"; else
    echo "FAIL: the process the PID file names was signalled"
    failures=$((failures + 1))
fi
kill "$victim" "$holder" 2>/dev/null
wait "$holder" 2>/dev/null
holder=
rm -f "$tmp/e.pid"

OCF_RESKEY_pid_file= expect 6 "validate-all without pid_file: not configured" -- \
    "$agent" validate-all
OCF_RESKEY_control=/nonexistent/ringd-control expect 5 "validate-all without ringd-control" -- \
    "$agent" validate-all
OCF_RESKEY_control=/nonexistent/ringd-control expect 7 "a probe without the tools: not running" \
    -- "$agent" monitor
OCF_RESKEY_stop_timeout=soon expect 6 "a stop_timeout that is not a number" -- \
    "$agent" validate-all

if [ -x "${XFERCTL:-}" ]; then
    mkdir -p "$tmp/xfer/spool" "$tmp/xfer/log"
    cat >"$tmp/xfer/xfer.toml" <<END
spool = "$tmp/xfer/spool"
run_dir = "$tmp/xfer/run"
log_dir = "$tmp/xfer/log"
[tcpip]
listen = ["127.0.0.1:0"]
END
    chmod -R a+rwX "$tmp/xfer"
    expect 0 "ocf-tester passes on the xfer agent" -- ocf-tester -n xfer \
        -o config="$tmp/xfer/xfer.toml" -o xferctl="$XFERCTL" "${XFER_AGENT:?}"
    "$XFERCTL" -c "$tmp/xfer/xfer.toml" stop >/dev/null 2>&1
fi

echo "$failures failures"
[ "$failures" -eq 0 ]
