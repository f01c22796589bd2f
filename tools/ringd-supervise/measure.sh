#!/bin/sh
# SPDX-License-Identifier: MIT
# measure.sh BUILD_DIR [SECONDS] — the two numbers of issue 4, on this machine:
#  1. ringd-supervise idle with 200 children (`sleep 1000`): CPU time (utime+stime from
#     /proc/PID/stat) and wake-ups (voluntary context switches) over SECONDS (default 10);
#  2. respawn latency with a restart delay of 0 (respawn_latency, 1000 respawns), without and
#     with the persistent table (whose fsync follows each respawn).
# Needs root only for nothing; every process it starts is ended.
set -eu
build=${1:?usage: measure.sh BUILD_DIR [SECONDS]}
seconds=${2:-10}
bin=$build/tools/ringd-supervise
dir=$(mktemp -d /tmp/ringd-measure-XXXXXX)
"$bin/ringd-supervise" --foreground --state "$dir/table" --log-dir "$dir/logs" \
    --control "$dir/ctl.sock" > "$dir/out" 2>&1 &
sup=$!
trap 'kill -TERM $sup 2>/dev/null; wait $sup 2>/dev/null; rm -rf "$dir"' EXIT
i=0; while [ ! -S "$dir/ctl.sock" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done
n=1; while [ $n -le 200 ]; do
    "$bin/ringd-supervise" ctl --control "$dir/ctl.sock" register "sleeper$n" -- /bin/sleep 1000 > /dev/null
    n=$((n+1))
done
i=0; while [ "$("$bin/ringd-supervise" ctl --control "$dir/ctl.sock" list | grep -c ' running ')" -lt 200 ] && [ $i -lt 200 ]; do
    sleep 0.05; i=$((i+1))
done
running=$("$bin/ringd-supervise" ctl --control "$dir/ctl.sock" list | grep -c ' running ')
sleep 1
cpu() { awk '{ print $14 + $15 }' "/proc/$sup/stat"; }  # its comm has no spaces
wakeups() { awk '/^voluntary_ctxt_switches/ { print $2 }' "/proc/$sup/status"; }
c0=$(cpu); w0=$(wakeups)
sleep "$seconds"
c1=$(cpu); w1=$(wakeups)
echo "idle: $running children, ${seconds} s: cpu $((c1 - c0)) ticks of 1/$(getconf CLK_TCK) s, wake-ups $((w1 - w0))"
kill -TERM $sup; wait $sup || true
"$bin/respawn_latency" "$bin/respawn_probe" --count 1000
"$bin/respawn_latency" "$bin/respawn_probe" --count 1000 --table "$dir/respawn-table"
"$bin/respawn_latency" "$bin/respawn_probe" --count 1000 --wait poll
