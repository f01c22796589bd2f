#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Start-to-ready and stop latency of echod driven by ringd-control, N rounds (default 200):
#   start: `ringd-control --start -- echod ...` returns = echod listens (readiness pipe);
#   stop:  `ringd-control --stop` returns = SIGTERM sent, echod drained, PID-file lock released.
# Usage: examples/echod/lifecycle_latency.sh BUILD_DIR [N]
set -euo pipefail
build=${1:-build}
rounds=${2:-200}
work=$(mktemp -d)
control=("$build/tools/ringd-control/ringd-control" --pid-file "$work/echod.pid")
echod=("$build/examples/echod/echod" --listen 127.0.0.1:0 --listen "$work/echod.sock"
       --pid-file "$work/echod.pid")
trap '"${control[@]}" --stop --timeout 2 >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
: > "$work/times"
for _ in $(seq "$rounds"); do
    t0=$EPOCHREALTIME
    "${control[@]}" --start -- "${echod[@]}" >/dev/null
    t1=$EPOCHREALTIME
    "${control[@]}" --stop >/dev/null
    t2=$EPOCHREALTIME
    echo "$t0 $t1 $t2" >> "$work/times"
done
summary() { # column of milliseconds on stdin
    sort -g | awk '{a[NR] = $1; s += $1}
        END {printf "median %.2f ms, p90 %.2f ms, p99 %.2f ms, mean %.2f ms (n=%d)\n",
             a[int(NR * 0.5) + 1], a[int(NR * 0.9)], a[int(NR * 0.99)], s / NR, NR}'
}
echo "start-to-ready: $(awk '{print ($2 - $1) * 1000}' "$work/times" | summary)"
echo "stop:           $(awk '{print ($3 - $2) * 1000}' "$work/times" | summary)"
