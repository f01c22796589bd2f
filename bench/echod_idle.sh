#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# echod_idle.sh — the capacity check of docs/04-many-connections.md: one echod with IDLE idle
# connections (default 19,000; this machine allows 20,000 open files per process), then
#   - every idle connection and a fresh one must still echo a line (echo_load's final check),
#   - RSS growth per idle connection is reported (the target is 512 bytes at most),
#   - SIGTERM must stop echod (it drains: every idle connection is closed) within 10 s.
# Usage: BUILD_DIR=build bench/echod_idle.sh [IDLE]   Exit 0 when all of that holds.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}
idle=${1:-19000}
echod=$build/examples/echod/echod
load=${ECHO_LOAD:-$build/bench/echo_load}
for exe in "$echod" "$load"; do
    [ -x "$exe" ] || { echo "echod_idle: $exe is not built" >&2; exit 2; }
done
tmp=$(mktemp -d)
echod_pid=
cleanup() {
    [ -n "$echod_pid" ] && kill -9 "$echod_pid" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

"$echod" --listen 127.0.0.1:0 --foreground --drain-timeout 5 >"$tmp/out" 2>"$tmp/err" &
echod_pid=$!
for _ in $(seq 200); do grep -q "listening on" "$tmp/out" && break; sleep 0.05; done
port=$(grep -o 'listening on 127.0.0.1:[0-9]*' "$tmp/out" | head -n 1 | sed 's/.*://')
[ -n "$port" ] || { echo "echod_idle: echod did not start: $(cat "$tmp/err")" >&2; exit 1; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$echod_pid/status"; }
before=$(rss_kb)

# The load's --sync protocol: "ready" once every connection is established and silent; we read
# RSS then, let one ping-pong connection run (its messages are lines), and let the final check run.
coproc LOAD { "$load" --port "$port" --idle "$idle" --connections 1 --size 16 --duration 1 --sync; }
load_pid=$LOAD_PID # bash unsets LOAD_PID once the coprocess has ended
read -r -t 300 line <&"${LOAD[0]}" || { echo "echod_idle: the load did not get ready" >&2; exit 1; }
sleep 1 # the server has read what the kernel queued
after=$(rss_kb)
echo go >&"${LOAD[1]}"
read -r -t 60 line <&"${LOAD[0]}" || true
echo go >&"${LOAD[1]}"
result=$(cat <&"${LOAD[0]}")
load_status=0
wait "$load_pid" 2>/dev/null || load_status=$?
per_idle=$(( (after - before) * 1024 / idle ))
echo "echod_idle: idle=$idle rss_before_kb=$before rss_after_kb=$after rss_per_idle_bytes=$per_idle"
echo "echod_idle: load: $result (exit $load_status)"

kill -TERM "$echod_pid"
stopped=no
for _ in $(seq 100); do
    kill -0 "$echod_pid" 2>/dev/null || { stopped=yes; break; }
    sleep 0.1
done
echo "echod_idle: stopped by SIGTERM within 10 s: $stopped"
[ "$stopped" = yes ] && { wait "$echod_pid" || true; echod_pid=; }
[[ $result == *"idle_ok=$idle/$idle fresh=ok"* ]] && [ "$load_status" -eq 0 ] &&
    [ "$stopped" = yes ] && [ "$per_idle" -le 512 ]
