#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# run_echo.sh — the echo benchmark: every server against echo_load in interleaved rounds
# (A B C A B C ...) so that drift in the machine's state hits all servers alike; then a table of
# medians with ratios to raw_uring, a capacity run (many idle connections, all must still echo),
# every round in a TSV, and the results with a plot in docs/bench/echo.md and echo.png.
#
# usage: bench/run_echo.sh [--threads N] [--client-threads T] [--server-cpus LIST]
#                          [--client-cpus LIST] [--no-pin] [--no-doc] [--tsv FILE] [SERVER...]
#   SERVER         ringd, raw_uring, epoll, asio: runs BUILD_DIR/bench/echo_SERVER (default: all
#                  four; a server whose binary is not built is skipped with a message)
#   --threads N    server threads (listeners and loops; default 1)
#   --client-threads T  echo_load ping-pong threads (default 1)
#   --server-cpus LIST, --client-cpus LIST  pin the server and the load client (taskset -c);
#                  by default, on 2 cores or more, the server gets the last core and the client
#                  core 0 (on a small machine the scheduler otherwise sometimes stacks both on
#                  one core); --no-pin leaves placement to the scheduler
#   --no-doc       only print the tables: leave docs/bench/echo.md and echo.png alone
#   --tsv FILE     where to write every round (default: BUILD_DIR/bench/echo.tsv)
# environment: ROUNDS (5), DURATION (seconds of ping-pong per run, 3), CONNECTIONS (in ping-pong,
#   64), IDLE (idle connections during every run, 10000), SIZE (bytes per message, 64),
#   CAPACITY_IDLE (idle connections of the capacity run, 19000; 0 = no capacity run),
#   WARMUP (seconds of an unrecorded first run, 1; 0 = none), BUILD_DIR (build), TSV,
#   DOC (docs/bench/echo.md), PLOT (docs/bench/echo.png), PRIORITY (-15; 0 = leave alone: as
#   root, the nice value of the session's scheduling group during the run, as run_all.sh does)
#
# Per run: start the server on an ephemeral port and read its RSS; start echo_load --sync, which
# connects IDLE idle and CONNECTIONS ping-pong connections and says "ready"; wait until the server
# has accepted all of them (its accept queues are empty), read its RSS and CPU time; let the
# ping-pong run for DURATION; read the CPU time again at "done"; let echo_load check that every
# idle connection and a fresh one still echo; SIGTERM the server and read its "msgs=N bytes=B".
#   CPU per message = server CPU (utime+stime, /proc/PID/stat) during the ping-pong / round trips
#   RSS per idle connection = (VmRSS with every connection open and silent − VmRSS before any) /
#                             (IDLE + CONNECTIONS)
set -euo pipefail

prog=run_echo.sh
die() {
    echo "$prog: $*" >&2
    exit 1
}

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=$(cd "${BUILD_DIR:-$repo/build}" 2>/dev/null && pwd) ||
    die "no build directory '${BUILD_DIR:-$repo/build}'"
bench_dir=$build_dir/bench
rounds=${ROUNDS:-5}
duration=${DURATION:-3}
connections=${CONNECTIONS:-64}
idle=${IDLE:-10000}
size=${SIZE:-64}
capacity_idle=${CAPACITY_IDLE:-19000}
warmup=${WARMUP:-1}
tsv=${TSV:-$bench_dir/echo.tsv}
doc=${DOC:-$repo/docs/bench/echo.md}
plot=${PLOT:-$repo/docs/bench/echo.png}
threads=1
client_threads=1
server_cpus=
client_cpus=
pin=auto
write_doc=1
servers=()
command_line="bench/run_echo.sh${*:+ $*}"

while (($#)); do
    case $1 in
    --threads) threads=${2:?--threads needs a value}; shift 2 ;;
    --client-threads) client_threads=${2:?--client-threads needs a value}; shift 2 ;;
    --tsv) tsv=${2:?--tsv needs a value}; shift 2 ;;
    --server-cpus) server_cpus=${2:?--server-cpus needs a value}; pin=given; shift 2 ;;
    --client-cpus) client_cpus=${2:?--client-cpus needs a value}; pin=given; shift 2 ;;
    --no-pin) pin=none; shift ;;
    --no-doc) write_doc=; shift ;;
    -h | --help) sed -n '3,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) die "unknown option '$1' (try --help)" ;;
    *) servers+=("$1"); shift ;;
    esac
done
for v in rounds connections size threads client_threads; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "bad ${v^^} '${!v}': expected a positive integer"
done
for v in idle capacity_idle; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "bad ${v^^} '${!v}': expected an integer"
done
[[ $duration =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "bad DURATION '$duration': expected seconds"
[[ $warmup =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "bad WARMUP '$warmup': expected seconds"

((${#servers[@]})) || servers=(ringd raw_uring epoll asio)
present=()
for s in "${servers[@]}"; do
    [[ $s =~ ^[A-Za-z0-9_]+$ ]] || die "bad server '$s'"
    if [[ -x $bench_dir/echo_$s ]]; then
        present+=("$s")
    else
        echo "$prog: skipping $s: $bench_dir/echo_$s is not built" >&2
    fi
done
((${#present[@]})) || die "no echo server built in $bench_dir (meson setup -Dbenchmarks=true?)"
servers=("${present[@]}")
load=$bench_dir/echo_load
[[ -x $load ]] || die "no load client $load (built? BUILD_DIR?)"
if [[ $pin == auto ]] && (($(nproc) >= 2)) && command -v taskset >/dev/null; then
    server_cpus=$(($(nproc) - 1)) client_cpus=0
fi
clk_tck=$(getconf CLK_TCK)

tmp=$(mktemp -d)
# cpu_ticks, rss_kb, fd_count; server_start, server_stop, machine_description.
source "$repo/bench/proc_cpu.sh"
source "$repo/bench/bench_lib.sh"
pin_commands
load_pid=
cleanup() {
    if [[ -n $load_pid ]] && kill -0 "$load_pid" 2>/dev/null; then
        kill -TERM "$load_pid" 2>/dev/null || true
        wait "$load_pid" 2>/dev/null || true
    fi
    server_cleanup
    rm -rf "$tmp"
    restore_priority
}
trap cleanup EXIT
trap 'exit 130' INT TERM
server_init
mkfifo "$tmp/load_in" "$tmp/load_out"
raise_priority "${PRIORITY:--15}"

# load_line SECONDS PATTERN WHAT: the next line from echo_load must match PATTERN.
load_line() {
    local line
    if ! read -r -t "$1" -u "$load_out" line || [[ ! $line =~ $2 ]]; then
        die "echo_load: expected $3, got '${line:-nothing}'"
    fi
}

# accept_backlog PORT: connections waiting in the accept queues of the listeners on PORT
# (Recv-Q of a listening socket).
have_ss=0
command -v ss >/dev/null && have_ss=1
accept_backlog() {
    ss -Hltn "sport = :$1" | awk '{ q += $2 } END { print q + 0 }'
}

# run_one SERVER IDLE SECONDS: one run; sets msgs msgs_per_s p50 p99 check idle_ok rss0 rss1
# ticks server_msgs server_bytes.
run_one() {
    local name=$1 idle_n=$2 seconds=$3 fds0 t0 want waited=0 rc=0
    server_start "echo_$name" "${server_cmd[@]}" "$bench_dir/echo_$name" --port 0 \
        --threads "$threads"
    rss0=$(rss_kb "$server_pid")
    fds0=$(fd_count "$server_pid")

    "${client_cmd[@]}" "$load" --sync --port "$server_port" --idle "$idle_n" \
        --connections "$connections" --size "$size" --duration "$seconds" \
        --threads "$client_threads" <"$tmp/load_in" >"$tmp/load_out" &
    load_pid=$!
    exec {load_in}>"$tmp/load_in" {load_out}<"$tmp/load_out"
    load_line 300 '^ready ' "'ready ...' (every connection established)"
    # Connected is not yet accepted: wait until the server has taken every connection, i.e.
    # its listeners' accept queues are empty (ss; this holds whatever the server does with
    # the sockets, direct descriptors included), or else until it holds a descriptor for each.
    want=$((fds0 + idle_n + connections))
    while if ((have_ss)); then (($(accept_backlog "$server_port") > 0)); else
        (($(fd_count "$server_pid") < want)); fi; do
        ((waited++ < 300)) || die "echo_$name has not accepted every connection after 30 s"
        sleep 0.1
    done
    sleep 0.2 # every recv armed
    rss1=$(rss_kb "$server_pid")
    t0=$(cpu_ticks "$server_pid")
    echo go >&"$load_in"
    load_line "$(awk -v d="$seconds" 'BEGIN { print int(d) + 60 }')" '^done ' "'done ...'"
    ticks=$(($(cpu_ticks "$server_pid") - t0))
    echo go >&"$load_in"
    load_line 120 '^msgs=([0-9]+) seconds=[0-9.]+ msgs_per_s=([0-9]+) p50_us=([0-9.]+) p99_us=([0-9.]+) idle_ok=([0-9]+)/[0-9]+ fresh=([a-z]+)$' \
        "the final 'msgs=...' line"
    msgs=${BASH_REMATCH[1]} msgs_per_s=${BASH_REMATCH[2]} p50=${BASH_REMATCH[3]}
    p99=${BASH_REMATCH[4]} idle_ok=${BASH_REMATCH[5]}
    wait "$load_pid" || rc=$?
    load_pid=
    exec {load_in}>&- {load_out}<&-
    # echo_load has said on stderr which connections failed.
    check=ok
    ((rc == 0)) || check=FAILED
    server_stop "echo_$name" '^msgs=([0-9]+) bytes=([0-9]+)$'
    server_msgs=${server_final[1]} server_bytes=${server_final[2]}
}

started=$(date -u '+%Y-%m-%d %H:%M UTC')
machine=$(machine_description "$build_dir")
placement="${server_cpus:+server on CPU $server_cpus, }${client_cpus:+client on CPU $client_cpus, }"
placement=${placement:-not pinned, }
echo "echo benchmark: servers ${servers[*]}; $rounds rounds of ${duration} s; $connections" \
    "connections in ping-pong ($size B messages), $idle idle; server threads $threads, client" \
    "threads $client_threads; ${placement}$(nproc) cores" >&2

if [[ $warmup != 0 && $warmup != 0.0 ]]; then
    run_one "${servers[0]}" "$idle" "$warmup"
fi

mkdir -p "$(dirname "$tsv")"
columns=(round server threads idle connections size duration_s msgs msgs_per_s p50_us p99_us
    cpu_ticks cpu_us cpu_us_per_msg rss0_kb rss1_kb rss_b_per_conn check server_msgs
    server_bytes load1)
(IFS=$'\t'; echo "${columns[*]}") >"$tsv"
record() { # ROUND SERVER IDLE SECONDS: the figures of the last run_one, as a TSV row
    local cpu_us per_msg per_conn load1
    cpu_us=$((ticks * 1000000 / clk_tck))
    per_msg=$(awk -v us="$cpu_us" -v n="$msgs" 'BEGIN { printf "%.3f", n ? us / n : 0 }')
    per_conn=$(awk -v a="$rss0" -v b="$rss1" -v n="$(($3 + connections))" \
        'BEGIN { printf "%.1f", (b - a) * 1024 / n }')
    read -r load1 _ </proc/loadavg
    printf '%s\t%s\t%d\t%d\t%d\t%d\t%s\t%d\t%d\t%s\t%s\t%d\t%d\t%s\t%d\t%d\t%s\t%s\t%d\t%d\t%s\n' \
        "$1" "$2" "$threads" "$3" "$connections" "$size" "$4" "$msgs" "$msgs_per_s" "$p50" "$p99" \
        "$ticks" "$cpu_us" "$per_msg" "$rss0" "$rss1" "$per_conn" "$check" "$server_msgs" \
        "$server_bytes" "$load1" >>"$tsv"
    printf 'round %-8s %-10s %7d msgs/s  %7s us CPU/msg  %7s B/idle conn  p50 %s us  p99 %s us  check %s  (load %s)\n' \
        "$1" "$2" "$msgs_per_s" "$per_msg" "$per_conn" "$p50" "$p99" "$check" "$load1" >&2
}
for ((round = 1; round <= rounds; round++)); do
    for s in "${servers[@]}"; do
        run_one "$s" "$idle" "$duration"
        record "$round" "$s" "$idle" "$duration"
    done
done
# The capacity run: once per server, CAPACITY_IDLE idle connections (this machine allows 20,000
# open files per process: the server needs one per connection), a short ping-pong, then every
# connection must still echo.
if ((capacity_idle > 0)); then
    for s in "${servers[@]}"; do
        run_one "$s" "$capacity_idle" 1
        record capacity "$s" "$capacity_idle" 1
    done
fi

# Medians per server, in the order given; ratios to raw_uring (or the first server).
table=$(awk -F'\t' -v order="${servers[*]}" "$(<"$repo/bench/stats.awk")"$'\n''
NR > 1 && $1 != "capacity" {
    rate[$2] = rate[$2] " " $9; cpu[$2] = cpu[$2] " " $14; rss[$2] = rss[$2] " " $17
    p50[$2] = p50[$2] " " $10; p99[$2] = p99[$2] " " $11; n[$2]++; if ($18 != "ok") bad[$2]++
}
NR > 1 && $1 == "capacity" { cap[$2] = $18 " (" $4 " idle, " $17 " B each)" }
END {
    ns = split(order, name, " ")
    base = name[1]
    for (i = 1; i <= ns; i++) if (name[i] == "raw_uring") base = "raw_uring"
    bc = median(cpu[base]); br = median(rss[base])
    print "| server | msgs/s | CPU µs/msg (min–max) | vs " base " | RSS B/idle conn | vs " base \
        " | p50 µs | p99 µs | checks failed | capacity run | rounds |"
    print "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|"
    for (i = 1; i <= ns; i++) {
        s = name[i]; c = median(cpu[s]); r = median(rss[s])
        printf "| %s | %.0f | **%.2f** (%.2f–%.2f) | %.3f | **%.0f** | %s | %.1f | %.1f | %d | %s | %d |\n", \
            s, median(rate[s]), c, lo(cpu[s]), hi(cpu[s]), bc ? c / bc : 0, r, \
            (br > 0 ? sprintf("%.2f", r / br) : "–"), median(p50[s]), median(p99[s]), bad[s] + 0, \
            (s in cap ? cap[s] : "not run"), n[s]
    }
}' "$tsv")
echo "$table"

# The issue's targets for ringd, when it ran: CPU judged on paired ratios (the estimator that
# drift between rounds does not move), memory on the median, capacity on its one run.
targets=
has() { [[ " ${servers[*]} " == *" $1 "* ]]; }
if has ringd; then
    targets=$(
        echo "| target (issue 10) | ringd | met |"
        echo "|---|---:|---|"
        for t in raw_uring:1.05 epoll:1 asio:1; do
            base=${t%%:*} limit=${t#*:}
            has "$base" || continue
            paired=$(paired_ratio "$tsv" ringd "$base" 14)
            awk -v b="$base" -v lim="$limit" -v p="$paired" 'BEGIN {
                v = p + 0; met = (lim == 1 ? v < 1 : v <= lim) && p != "n/a"
                what = (lim == 1 ? "< " : "≤ " lim " × ") b
                printf "| CPU per message %s (paired ratio, quartiles) | %s | %s |\n", what, p,
                    met ? "yes" : "**no**"
            }'
        done
        awk -F'\t' "$(<"$repo/bench/stats.awk")"$'\n''
            NR > 1 && $1 != "capacity" && $2 == "ringd" { rss = rss " " $17 }
            NR > 1 && $1 == "capacity" && $2 == "ringd" { cap = $18; n = $4 }
            END {
                r = median(rss)
                printf "| RSS per idle connection ≤ 512 B (median) | %.0f B | %s |\n", r, r <= 512 ? "yes" : "**no**"
                if (cap != "")
                    printf "| %d idle connections all served (capacity run) | %s | %s |\n", n, cap, \
                        cap == "ok" ? "yes" : "**no**"
            }' "$tsv"
    )
    echo
    echo "$targets"
fi
echo "every round: $tsv" >&2

[[ -n $write_doc ]] || exit 0

# ---- the plot: one bar per server, whiskers from the best to the worst round ----
awk -F'\t' -v order="${servers[*]}" "$(<"$repo/bench/stats.awk")"$'\n''
NR > 1 && $1 != "capacity" { rate[$2] = rate[$2] " " $9; cpu[$2] = cpu[$2] " " $14; rss[$2] = rss[$2] " " $17 }
END {
    ns = split(order, name, " ")
    for (i = 1; i <= ns; i++) {
        s = name[i]
        print i, s, median(cpu[s]), lo(cpu[s]), hi(cpu[s]), median(rss[s]), lo(rss[s]), hi(rss[s]), \
            median(rate[s]), lo(rate[s]), hi(rate[s])
    }
}' "$tsv" >"$tmp/plot.dat"
plot_note=
if command -v gnuplot >/dev/null; then
    mkdir -p "$(dirname "$plot")"
    if gnuplot <<EOF; then
set terminal pngcairo size 1500,480 font ",11" noenhanced
set output "$plot"
set multiplot layout 1,3 title "echo on loopback, 1 server thread, $connections connections in ping-pong ($size B) + $idle idle: $(nproc) cores, $started. Bars: medians of $rounds rounds; whiskers: best to worst round"
set style data histograms
set style histogram errorbars gap 2 lw 1
set style fill solid 0.7 border -1
set grid ytics
set yrange [0:*]
unset key
set title "µs of server CPU per message (lower is better)"
plot "$tmp/plot.dat" using 3:4:5:xtic(2) lc rgb "#cc6677"
set title "bytes of server RSS per idle connection (lower is better)"
set arrow 1 from graph 0, first 512 to graph 1, first 512 nohead dt 2 lc rgb "#555555"
set label 1 "512 B (issue 10's target for ringd)" at graph 0.02, first 512 offset 0,0.7
plot "$tmp/plot.dat" using 6:7:8:xtic(2) lc rgb "#117733"
unset arrow 1
unset label 1
set title "round trips per second (client and server share the machine)"
plot "$tmp/plot.dat" using 9:10:11:xtic(2) lc rgb "#4477aa"
unset multiplot
EOF
        plot_note="![µs of server CPU per message, bytes per idle connection, msgs/s]($(basename "$plot"))"
    else
        echo "$prog: gnuplot failed; no plot" >&2
    fi
else
    echo "$prog: gnuplot is not installed (apt-get install gnuplot-nox): no plot" >&2
fi

# ---- the document: the results between markers, notes around them kept ----
{
    echo "<!-- results:begin — written by bench/run_echo.sh; edits between the markers are lost -->"
    echo "## Results"
    echo
    echo "Taken $started on: $machine."
    echo
    echo "Command: \`$command_line\` (BUILD_DIR=${build_dir#"$repo"/}; \`./run bench\` runs it after" \
        "the accept benchmark); ROUNDS=$rounds DURATION=$duration CONNECTIONS=$connections" \
        "IDLE=$idle SIZE=$size CAPACITY_IDLE=$capacity_idle; server threads $threads, client" \
        "threads $client_threads; ${placement%, }; $priority_note. Load average (1 min) during the rounds:" \
        "$(awk -F'\t' 'NR > 1 { if (m == "" || $21 + 0 < m) m = $21 + 0; if ($21 + 0 > x) x = $21 + 0 } END { printf "%s–%s", m, x }' "$tsv")."
    echo
    echo "$rounds interleaved rounds ($(printf '%s, ' "${servers[@]}")${servers[0]}, ...); medians."
    echo "CPU µs/msg: server utime + stime (/proc/PID/stat) during the ping-pong, divided by the"
    echo "round trips echo_load completed. RSS per idle connection: server VmRSS with every"
    echo "connection open and silent minus VmRSS before the first, divided by the connections."
    echo "p50/p99: round trip seen by echo_load. Checks failed: runs in which an idle connection"
    echo "or a fresh one did not echo at the end. Capacity run: one run with CAPACITY_IDLE idle"
    echo "connections, its check and RSS per connection."
    echo
    echo "$table"
    echo
    [[ -n $targets ]] && echo "$targets" && echo
    [[ -n $plot_note ]] && echo "$plot_note" && echo
    echo "<!-- results:end -->"
} >"$tmp/section.md"
write_results "$doc" "$tmp/section.md" "Echo benchmark"
echo "$prog: wrote $doc${plot_note:+ and $plot}" >&2
