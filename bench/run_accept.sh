#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# run_accept.sh — the accept benchmark: every server against accept_load, in interleaved rounds
# (A B C A B C ...) so that drift in the machine's state hits all servers alike, then a table of
# medians with ratios to raw_uring, and every round in a TSV.
#
# usage: bench/run_accept.sh [--threads N] [--client-threads T] [--wait-close] [--tsv FILE]
#                            [--server-cpus LIST] [--client-cpus LIST] [SERVER...]
#   SERVER         raw_uring, epoll, asio, ringd: runs BUILD_DIR/bench/accept_SERVER
#                  (default: raw_uring epoll asio, plus ringd when it is built); SERVER:N runs
#                  it with --threads N, so that thread counts can be interleaved too
#   --threads N    passed to each server without its own :N (listeners/threads; default 1)
#   --client-threads T  accept_load threads (default 1)
#   --wait-close   accept_load closes each connection only after the server closed it, so at
#                  most CONNECTIONS wait in the accept queue (default: close once connected)
#   --tsv FILE     where to write every round (default: BUILD_DIR/bench/accept.tsv)
#   --server-cpus LIST, --client-cpus LIST  pin the server and the load client (taskset -c
#                  LIST, e.g. 1 and 0): on a small machine the scheduler otherwise sometimes puts
#                  both on one core, which halves conn/s and changes the batching, and so the
#                  CPU per accept, from run to run (default: no pinning)
# environment: ROUNDS (3), DURATION (seconds per run, 3), CONNECTIONS (in flight, 64),
#   WARMUP (seconds of an unrecorded first run, 1; 0 = none), BUILD_DIR (build), TSV
#
# Per run: start the server on an ephemeral port, read the port from its "listening on" line, run
# accept_load for DURATION, read the server's CPU time (utime+stime from /proc/PID/stat) just
# before SIGTERM, then read its "accepted=N". CPU per accept = that CPU time / N.
set -euo pipefail

prog=run_accept.sh
die() {
    echo "$prog: $*" >&2
    exit 1
}

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${BUILD_DIR:-$repo/build}
bench_dir=$build_dir/bench
rounds=${ROUNDS:-3}
duration=${DURATION:-3}
connections=${CONNECTIONS:-64}
warmup=${WARMUP:-1}
tsv=${TSV:-$bench_dir/accept.tsv}
threads=1
client_threads=1
client_mode=close # accept_load: close once connected (close), or after the server (wait-close)
server_cpus=
client_cpus=
servers=()

while (($#)); do
    case $1 in
    --threads) threads=${2:?--threads needs a value}; shift 2 ;;
    --client-threads) client_threads=${2:?--client-threads needs a value}; shift 2 ;;
    --wait-close) client_mode=wait-close; shift ;;
    --tsv) tsv=${2:?--tsv needs a value}; shift 2 ;;
    --server-cpus) server_cpus=${2:?--server-cpus needs a value}; shift 2 ;;
    --client-cpus) client_cpus=${2:?--client-cpus needs a value}; shift 2 ;;
    -h | --help) sed -n '3,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) die "unknown option '$1' (try --help)" ;;
    *) servers+=("$1"); shift ;;
    esac
done
[[ $rounds =~ ^[1-9][0-9]*$ ]] || die "bad ROUNDS '$rounds': expected a positive integer"
[[ $duration =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "bad DURATION '$duration': expected seconds"
[[ $warmup =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "bad WARMUP '$warmup': expected seconds"
[[ $threads =~ ^[1-9][0-9]*$ ]] || die "bad --threads '$threads': expected a positive integer"
[[ $client_threads =~ ^[1-9][0-9]*$ ]] ||
    die "bad --client-threads '$client_threads': expected a positive integer"

if ((${#servers[@]} == 0)); then
    servers=(raw_uring epoll asio)
    [[ -x $bench_dir/accept_ringd ]] && servers+=(ringd)
fi
for s in "${servers[@]}"; do
    [[ $s =~ ^[A-Za-z0-9_]+(:[1-9][0-9]*)?$ ]] || die "bad server '$s': expected NAME or NAME:THREADS"
    [[ -x $bench_dir/accept_${s%%:*} ]] ||
        die "no server $bench_dir/accept_${s%%:*} (built? BUILD_DIR?)"
done
load=$bench_dir/accept_load
[[ -x $load ]] || die "no load client $load (built? BUILD_DIR?)"
clk_tck=$(getconf CLK_TCK)

# Everything this script starts is stopped on the way out, however it ends.
tmp=$(mktemp -d)
# cpu_ticks PID: the server's CPU time so far, in clock ticks; server_start/server_stop.
source "$repo/bench/proc_cpu.sh"
source "$repo/bench/bench_lib.sh"
pin_commands
cleanup() {
    server_cleanup
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
server_init

# threads_of SERVER: the N of NAME:N, else --threads.
threads_of() {
    if [[ $1 == *:* ]]; then echo "${1#*:}"; else echo "$threads"; fi
}

# run_one SERVER SECONDS: one run; sets connections_done, client_seconds, conn_per_s (from
# accept_load), accepted and ticks (the server's CPU time).
run_one() {
    local name=${1%%:*} server_threads load_out
    local seconds=$2
    server_threads=$(threads_of "$1")
    local -a load_flags=()
    [[ $client_mode == wait-close ]] && load_flags+=(--wait-close)
    server_start "accept_$name" "${server_cmd[@]}" "$bench_dir/accept_$name" --port 0 \
        --threads "$server_threads"

    load_out=$("${client_cmd[@]}" "$load" --port "$server_port" --connections "$connections" --duration "$seconds" \
        --threads "$client_threads" "${load_flags[@]}") ||
        die "accept_load failed against accept_$name"
    [[ $load_out =~ ^connections=([0-9]+)\ seconds=([0-9.]+)\ conn_per_s=([0-9]+)$ ]] ||
        die "unexpected accept_load output: $load_out"
    connections_done=${BASH_REMATCH[1]} client_seconds=${BASH_REMATCH[2]}
    conn_per_s=${BASH_REMATCH[3]}

    ticks=$(cpu_ticks "$server_pid")
    server_stop "accept_$name" '^accepted=([0-9]+)$'
    accepted=${server_final[1]}
}

echo "accept benchmark: servers ${servers[*]}; $rounds rounds of ${duration} s;" \
    "$connections connects in flight ($client_mode); server threads $threads (unless :N)," \
    "client threads $client_threads;${server_cpus:+ server on CPUs $server_cpus;}" \
    "${client_cpus:+client on CPUs $client_cpus;}" \
    "$(nproc) cores" >&2

if [[ $warmup != 0 && $warmup != 0.0 ]]; then
    # Brings the kernel to its steady state (socket caches, the TIME_WAIT table, which fills
    # within seconds at these rates) before anything is recorded, so round 1 is not special.
    run_one "${servers[0]}" "$warmup"
fi

mkdir -p "$(dirname "$tsv")"
columns=(round server threads client_threads client_mode duration_s connections client_seconds
    conn_per_s accepted cpu_ticks cpu_us cpu_us_per_accept load1)
(IFS=$'\t'; echo "${columns[*]}") >"$tsv"
for ((round = 1; round <= rounds; round++)); do
    for s in "${servers[@]}"; do
        run_one "$s" "$duration"
        cpu_us=$((ticks * 1000000 / clk_tck))
        per_accept=$(awk -v us="$cpu_us" -v n="$accepted" 'BEGIN { printf "%.3f", n ? us / n : 0 }')
        # The machine may be shared: the 1-minute load average goes with every round.
        read -r load1 _ </proc/loadavg
        printf '%d\t%s\t%d\t%d\t%s\t%s\t%d\t%s\t%d\t%d\t%d\t%d\t%s\t%s\n' "$round" "$s" \
            "$(threads_of "$s")" "$client_threads" "$client_mode" "$duration" "$connections_done" \
            "$client_seconds" "$conn_per_s" "$accepted" "$ticks" "$cpu_us" "$per_accept" \
            "$load1" >>"$tsv"
        printf 'round %d %-10s %8d conn/s  %7s us CPU/accept  (accepted %d, load %s)\n' \
            "$round" "$s" "$conn_per_s" "$per_accept" "$accepted" "$load1" >&2
    done
done

# Medians per server, in the order given; ratios against raw_uring (or the first server).
awk -F'\t' -v order="${servers[*]}" "$(<"$repo/bench/stats.awk")"$'\n''
NR > 1 {
    rate[$2] = rate[$2] " " $9; cpu[$2] = cpu[$2] " " $13; acc[$2] = acc[$2] " " $10; n[$2]++
}
END {
    ns = split(order, name, " ")
    base = name[1]
    for (i = 1; i <= ns; i++) if (name[i] == "raw_uring") base = "raw_uring"
    for (i = 1; i <= ns; i++) if (name[i] == "raw_uring:1") base = "raw_uring:1"
    base_rate = median(rate[base]); base_cpu = median(cpu[base])
    printf "%-10s %10s %13s %14s %13s %10s %6s\n", "server", "conn/s", "vs " base, \
        "CPU us/accept", "vs " base, "accepted", "rounds"
    for (i = 1; i <= ns; i++) {
        s = name[i]; r = median(rate[s]); c = median(cpu[s])
        printf "%-10s %10.0f %13.2f %14.2f %13.2f %10.0f %6d\n", s, r, \
            base_rate ? r / base_rate : 0, c, base_cpu ? c / base_cpu : 0, median(acc[s]), n[s]
    }
}' "$tsv"
echo "every round: $tsv" >&2
