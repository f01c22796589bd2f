#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# perf_split.sh — where each accept server's CPU goes (no hardware counters needed). Per server
# and round, two runs against accept_load, server and client pinned as run_all.sh pins them:
#   1. plain: the server's CPU from /proc/PID/stat (what run_accept.sh reports), `perf stat`'s
#      task-clock and its context switches, all per accepted connection;
#   2. `perf record -e cpu-clock -g`: every sample is put in one part, and the task-clock time
#      is split in those proportions:
#        user    the leaf frame is in user space (the server, liburing, libc, Asio)
#        socket  the stack passes through socket work every server pays per connection: accept
#                (do_accept, fd install), close (filp_close, __fput, tcp_close), packets
#                received in the server's context (net_rx_action: on loopback the replies to
#                the FIN the server sends are processed right there), RCU frees of sockets
#        mech    the rest of the kernel: system-call entry and exit, io_uring or epoll
#                machinery, going to sleep and being woken
# /proc minus task-clock is time the scheduler charges to the server around its context switches
# (switching, and in a VM the exits for halting and waking the vCPU), which perf's clocks do not
# see. Prints a markdown table of medians over rounds (rounds interleave the servers).
#
# usage: bench/perf_split.sh [BUILD_DIR] [SERVER...]   (default: build; raw_uring ringd epoll asio)
# environment: ROUNDS (3), DURATION (2 s per run), CONNECTIONS (64), FREQ (perf record Hz, 5000),
#   SERVER_CPUS and CLIENT_CPUS (taskset lists; default: the last core and core 0; empty: none),
#   LOAD_FLAGS (more accept_load flags, e.g. --wait-close)
set -euo pipefail

prog=perf_split.sh
die() {
    echo "$prog: $*" >&2
    exit 1
}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${1:-$repo/build}
(($#)) && shift
servers=("$@")
((${#servers[@]})) || servers=(raw_uring ringd epoll asio)
rounds=${ROUNDS:-3}
duration=${DURATION:-2}
connections=${CONNECTIONS:-64}
freq=${FREQ:-5000}
command -v perf >/dev/null || die "perf is missing (apt-get install linux-perf)"
clk_tck=$(getconf CLK_TCK)
server_cpus=${SERVER_CPUS-$(($(nproc) - 1))}
client_cpus=${CLIENT_CPUS-0}
server_cmd=()
client_cmd=()
[[ -n $server_cpus ]] && server_cmd=(taskset -c "$server_cpus")
[[ -n $client_cpus ]] && client_cmd=(taskset -c "$client_cpus")
for s in "${servers[@]}"; do
    [[ -x $build_dir/bench/accept_$s ]] || die "no server $build_dir/bench/accept_$s"
done

tmp=$(mktemp -d)
server_pid=
cleanup() {
    if [[ -n $server_pid ]]; then kill -TERM "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null; fi
    rm -rf "$tmp"
}
trap cleanup EXIT

# cpu_ticks PID: the server's CPU time so far, in clock ticks.
source "$repo/bench/proc_cpu.sh"

# start SERVER: starts it pinned, sets server_pid and port.
start() {
    : >"$tmp/out" # here, not in the background child: the old port must be gone before reading
    "${server_cmd[@]}" "$build_dir/bench/accept_$1" --port 0 >"$tmp/out" 2>"$tmp/err" &
    server_pid=$!
    port=
    for _ in $(seq 100); do
        port=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$tmp/out")
        [[ -n $port ]] && return
        sleep 0.1
    done
    die "accept_$1 did not start: $(cat "$tmp/err")"
}
# stop: SIGTERM, sets accepted.
stop() {
    kill -TERM "$server_pid"
    wait "$server_pid" || true
    server_pid=
    accepted=$(sed -n 's/^accepted=//p' "$tmp/out")
    [[ -n $accepted && $accepted != 0 ]] || die "no accepted=N from the server"
}
load() {
    # shellcheck disable=SC2086
    "${client_cmd[@]}" "$build_dir/bench/accept_load" --port "$port" \
        --connections "$connections" --duration "$duration" ${LOAD_FLAGS:-} >/dev/null
}

: >"$tmp/rows"
for ((round = 1; round <= rounds; round++)); do
    for s in "${servers[@]}"; do
        # 1. /proc, task-clock, context switches.
        start "$s"
        ticks0=$(cpu_ticks "$server_pid")
        perf stat -x, -e task-clock,context-switches -p "$server_pid" -o "$tmp/stat" \
            -- sleep "$duration" >/dev/null 2>&1 &
        perf_pid=$!
        load
        wait "$perf_pid" || true
        ticks=$(($(cpu_ticks "$server_pid") - ticks0))
        stop
        task_ms=$(awk -F, '$3 ~ /task-clock/ { print $1 }' "$tmp/stat")
        switches=$(awk -F, '$3 ~ /context-switches/ { print $1 }' "$tmp/stat")
        plain_accepted=$accepted

        # 2. The samples.
        start "$s"
        perf record -q -e cpu-clock -F "$freq" -g -p "$server_pid" -o "$tmp/perf.data" \
            -- sleep "$duration" >/dev/null 2>&1 &
        perf_pid=$!
        load
        wait "$perf_pid" || true
        stop
        perf script -i "$tmp/perf.data" -F ip,sym,dso 2>/dev/null | awk \
            -v name="$s" -v ticks="$ticks" -v tck="$clk_tck" -v n="$plain_accepted" \
            -v task_ms="$task_ms" -v switches="$switches" '
        function flush() {
            if (!nframes) return
            if (leaf_user) user++
            else if (is_socket) sock++
            else mech++
            total++; nframes = 0; is_socket = 0; leaf_user = 0
        }
        /^$/ { flush(); next }
        {
            sym = $2; dso = $NF
            if (nframes == 0) leaf_user = (dso !~ /kernel/)
            nframes++
            if (sym ~ /^(do_accept|__sys_accept4|inet_csk_accept|inet_accept|fd_install|filp_close|file_close_fd|__fput|____fput|sock_close|tcp_|__tcp_|inet_|__inet_|net_rx_action|rcu_do_batch|rcu_core|sk_|__sk_|sock_)/)
                is_socket = 1
        }
        END {
            flush()
            proc = ticks * 1e6 / tck / n; task = task_ms * 1000 / n; cs = switches / n
            printf "%s %.3f %.3f %.4f %.3f %.3f %.3f %d\n", name, proc, task, cs,
                task * user / total, task * mech / total, task * sock / total, total
        }' >>"$tmp/rows"
        echo "round $round: $(tail -1 "$tmp/rows")" >&2
    done
done

echo "| server | /proc CPU µs/accept | task-clock µs/accept | context switches/accept | (/proc − task-clock) per switch, µs | user µs | mech µs | socket µs | socket share |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
awk -v order="${servers[*]}" '
function median(list,    n, a, i, j, v) {
    n = split(list, a, " ")
    for (i = 2; i <= n; i++) { v = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > v; j--) a[j + 1] = a[j]; a[j + 1] = v }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
{ for (i = 2; i <= 8; i++) col[$1, i] = col[$1, i] " " $i }
END {
    ns = split(order, name, " ")
    for (k = 1; k <= ns; k++) {
        s = name[k]
        proc = median(col[s, 2]); task = median(col[s, 3]); cs = median(col[s, 4])
        u = median(col[s, 5]); m = median(col[s, 6]); so = median(col[s, 7])
        printf "| %s | %.2f | %.2f | %.3f | %.1f | %.2f | %.2f | %.2f | %.0f%% |\n", s, proc, task,
            cs, (cs > 0 ? (proc - task) / cs : 0), u, m, so, 100 * so / (u + m + so)
    }
}' "$tmp/rows"
