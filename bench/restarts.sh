#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bench/restarts.sh — zero-downtime restarts, measured (issue 12, item 4; ./run bench, section
# "restarts"). A load client (restarts_load) keeps RATE short connections per second (connect,
# one line, the reply, close) going over loopback while a server is restarted EVENTS times, in
# four ways, and counts the connections refused, reset and unanswered in each:
#   (a) ringd-control --upgrade of echod (the old one hands its sockets over, then drains)
#   (b) kill -9 of an echod that ringd-supervise runs and holds the socket of
#       (ctl register --listen ADDR: the supervisor binds once, every start inherits it)
#   (c) kill -9 of xferrd_tcpip under its master xferrd (the master holds the socket)
#   (d) ringd-control --stop, then --start, of echod: the baseline that (a)-(c) improve on
# Prints one table (also written to BUILD_DIR/restarts.txt). Target: 0 refused, reset and
# unanswered for (a)-(c). A scenario whose pieces are missing (a supervisor without --listen)
# prints "skipped" and why.
#
#   BUILD_DIR=build bench/restarts.sh     [EVENTS=20] [RATE=6000] [GAP=0.2] [XFER_GAP=1.2]
#
# Everything runs in a scratch directory and is stopped at the end, through its PID file or
# the PIDs this script started; nothing else is signalled.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}
events=${EVENTS:-20}
rate=${RATE:-6000}
gap=${GAP:-0.2} # seconds between two events: the load keeps going meanwhile
xfer_gap=${XFER_GAP:-1.2} # (c): longer than the xfer master's stable_after

echod=$build/examples/echod/echod
control=$build/tools/ringd-control/ringd-control
supervise=$build/tools/ringd-supervise/ringd-supervise
xferrd=$build/examples/xfer/xferrd
load=$build/bench/restarts_load
for b in "$echod" "$control" "$load"; do
    [ -x "$b" ] || { echo "restarts: $b is not built (ninja -C $build)" >&2; exit 2; }
done

work=$(mktemp -d /tmp/ringd-restarts.XXXXXX)
load_pid=
supervisor_started=
cleanup() {
    [ -n "$load_pid" ] && kill -TERM "$load_pid" 2>/dev/null && wait "$load_pid" 2>/dev/null
    for pid_file in "$work"/echod.pid "$work"/xfer/run/xferrd.pid; do
        [ -e "$pid_file" ] && "$control" --pid-file "$pid_file" --stop --timeout 20 >/dev/null 2>&1
    done
    [ -n "$supervisor_started" ] &&
        "$supervise" ctl --control "$work/sup.sock" shutdown >/dev/null 2>&1
    rm -rf "$work"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# load_start PORT [LINE EXPECT]: the client runs until load_stop; one second of warm-up.
load_start() {
    local args=(--port "$1" --rate "$rate")
    [ $# -ge 3 ] && args+=(--line "$2" --expect "$3")
    "$load" "${args[@]}" >"$work/load.out" 2>"$work/load.err" &
    load_pid=$!
    sleep 1
}
# load_stop: half a second more (the last event's connections complete), then the client's
# line into $load_line (not in a $(...) subshell: only this shell can wait for the client).
load_stop() {
    sleep 0.5
    kill -TERM "$load_pid"
    wait "$load_pid"
    load_pid=
    load_line=$(cat "$work/load.out")
}

# field LINE KEY: the value of KEY=... in the load client's line.
field() { tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p"; }

table=$work/table.txt
printf '%-44s %6s %7s %11s %8s %6s %10s %6s\n' scenario events conn/s connections refused reset \
    unanswered other >"$table"
# row NAME EVENTS LOADLINE
row() {
    printf '%-44s %6s %7s %11s %8s %6s %10s %6s\n' "$1" "$2" "$(field "$3" conn_per_s)" \
        "$(field "$3" connections)" "$(field "$3" refused)" "$(field "$3" reset)" \
        "$(field "$3" unanswered)" "$(field "$3" other)" >>"$table"
}
skipped() { printf '%-44s skipped: %s\n' "$1" "$2" >>"$table"; }

# wait_until SECONDS CMD...: polls CMD every 10 ms; false when it never succeeded.
wait_until() {
    local limit=$(($(date +%s%N) + $1 * 1000000000))
    shift
    until "$@"; do
        [ "$(date +%s%N)" -lt "$limit" ] || return 1
        sleep 0.01
    done
}

pid_file=$work/echod.pid

# (a) and (d): echod under ringd-control.
echod_scenario() { # NAME ACTION(upgrade|stop-start)
    local port done=0 i
    port=$(free_port)
    local cmd=("$echod" --listen "127.0.0.1:$port" --pid-file "$pid_file" --drain-timeout 5)
    local ctl=("$control" --pid-file "$pid_file")
    "${ctl[@]}" --start -- "${cmd[@]}" >/dev/null
    load_start "$port"
    for ((i = 0; i < events; i++)); do
        if [ "$2" = upgrade ]; then
            "${ctl[@]}" --upgrade --timeout 30 -- "${cmd[@]}" >/dev/null && done=$((done + 1))
        else
            "${ctl[@]}" --stop >/dev/null && "${ctl[@]}" --start -- "${cmd[@]}" >/dev/null &&
                done=$((done + 1))
        fi
        sleep "$gap"
    done
    load_stop
    row "$1" "$done" "$load_line"
    "${ctl[@]}" --stop >/dev/null
}

# (b): echod under ringd-supervise, which holds its socket.
supervised_scenario() {
    local name="(b) kill -9 of echod under ringd-supervise"
    [ -x "$supervise" ] || { skipped "$name" "$supervise is not built"; return; }
    mkdir -p "$work/sup-logs"
    local sup=("$supervise" ctl --control "$work/sup.sock")
    "$supervise" --state "$work/sup.table" --log-dir "$work/sup-logs" --control "$work/sup.sock" \
        -i >/dev/null
    supervisor_started=1
    local port out
    port=$(free_port)
    if ! out=$("${sup[@]}" register echod-sup --listen "127.0.0.1:$port" --restart-delay 0 \
        --start-limit-burst 0 -- "$echod" --foreground --listen "127.0.0.1:$port" 2>&1); then
        skipped "$name" "ringd-supervise ctl register --listen: $out"
        return
    fi
    sup_pid() { "${sup[@]}" status echod-sup --json 2>/dev/null | jq -r '.pid // 0'; }
    local pid done=0 i
    wait_until 10 test "$(sup_pid)" != 0 || { skipped "$name" "echod-sup did not start"; return; }
    load_start "$port"
    for ((i = 0; i < events; i++)); do
        pid=$(sup_pid)
        kill -9 "$pid"
        new_pid() { local p; p=$(sup_pid); [ "$p" != 0 ] && [ "$p" != "$pid" ]; }
        wait_until 10 new_pid && done=$((done + 1))
        sleep "$gap"
    done
    load_stop
    row "$name" "$done" "$load_line"
    "${sup[@]}" shutdown >/dev/null 2>&1 || true
    supervisor_started=
}

# (c): xferrd_tcpip under its master.
xfer_scenario() {
    local name="(c) kill -9 of xferrd_tcpip under xferrd"
    [ -x "$xferrd" ] || { skipped "$name" "$xferrd is not built"; return; }
    local port x=$work/xfer
    port=$(free_port)
    mkdir -p "$x"
    cat >"$x/xfer.toml" <<TOML
spool = "$x/spool"
run_dir = "$x/run"
log_dir = "$x/log"

[tcpip]
listen = ["127.0.0.1:$port"]
TOML
    "$xferrd" -c "$x/xfer.toml" >/dev/null 2>"$work/xferrd.err"
    local listen_file=$x/run/xferrd_tcpip.listen
    child_pid() { head -n 1 "$listen_file" 2>/dev/null || echo 0; }
    wait_until 10 test -s "$listen_file" || { skipped "$name" "xferrd_tcpip did not start"; return; }
    load_start "$port" PING PONG
    local pid done=0 i
    for ((i = 0; i < events; i++)); do
        pid=$(child_pid)
        kill -9 "$pid"
        new_child() { local p; p=$(child_pid); [ "$p" != 0 ] && [ "$p" != "$pid" ]; }
        wait_until 10 new_child && done=$((done + 1))
        # Past the master's stable_after (1 s): each kill is a crash of a receiver that had
        # been serving, not a crash loop, which the master rightly backs off from.
        sleep "$xfer_gap"
    done
    load_stop
    row "$name" "$done" "$load_line"
    "$control" --pid-file "$x/run/xferrd.pid" --stop --timeout 30 >/dev/null
}

echo "restarts: $events events per scenario, load $rate connections/s on loopback ($(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg) before)" >&2
echod_scenario "(a) ringd-control --upgrade of echod" upgrade
supervised_scenario
xfer_scenario
echod_scenario "(d) ringd-control --stop, --start of echod" stop-start
{
    echo "restarts: $events events each; load target $rate conn/s; load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
    cat "$table"
} | tee "$build/restarts.txt"
